import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real peers (Postfix, INetSim, moto_server) start once per file; give them room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: keep files from fighting over ports and CPU.
    fileParallelism: true,
    maxWorkers: 2,
    // The AWS SDK's own switch for its Node-version notice (@aws-sdk/core): on Node 20 it would
    // print once per test file and once per child process. The supported versions are in README.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
