import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real peers (Postfix, INetSim, moto_server) start once per file; give them room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Three files at once on two cores: most files spend much of their time waiting on a real
    // server or a bounded timeout, so a third worker fills that time. On a quiet 2-core machine
    // the suite took 229 s with 2 workers and 172 s with 3; with 4, timing-bound tests began to
    // fail. Every file gets its own ports (port 0) and its own server instances.
    fileParallelism: true,
    maxWorkers: 3,
    // The AWS SDK's own switch for its Node-version notice (@aws-sdk/core): on Node 20 it would
    // print once per test file and once per child process. The supported versions are in README.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
