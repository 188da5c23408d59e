import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Test files start real Postgres servers; on a 2-core machine running them one file at a
    // time is faster overall and keeps ports and CPU from being fought over.
    fileParallelism: false,
    testTimeout: 90_000,
    hookTimeout: 90_000,
    reporters: ['default'],
  },
});
