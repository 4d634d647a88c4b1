import { defineConfig, mergeConfig } from 'vitest/config';
import viteConfig from './vite.config.ts';

/**
 * Test projects. `unit`: pure logic and small components under jsdom (`npm test`).
 * A browser project (real Chromium through @vitest/browser-playwright with
 * executablePath /usr/bin/chromium, see shared/reference/dashboard.md) goes beside it.
 */
export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      projects: [
        {
          extends: true,
          test: {
            name: 'unit',
            environment: 'jsdom',
            include: ['test/unit/**/*.test.{ts,tsx}'],
            restoreMocks: true,
          },
        },
      ],
    },
  }),
);
