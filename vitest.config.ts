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
  },
});
