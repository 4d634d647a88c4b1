import react from '@vitejs/plugin-react';
import { defineConfig, type ProxyOptions } from 'vite';

/** The monitor `npm run dev` talks to (`VAJRA_MONITOR=http://127.0.0.1:8790 npm run dev`). */
const MONITOR = process.env.VAJRA_MONITOR ?? 'http://127.0.0.1:8787';
const DEV_PORT = Number(process.env.PORT ?? 5173);

/**
 * The monitor refuses a foreign Origin (403) and a Host that does not name it. The dev server
 * is a different origin, so the proxy presents the monitor's own origin, but only for requests
 * that come from the dev page itself; anything else keeps its Origin and is refused as usual.
 */
const DEV_ORIGIN = new RegExp(`^http://(localhost|127\\.0\\.0\\.1|\\[::1\\]):${DEV_PORT}$`);

function toMonitor(ws: boolean): ProxyOptions {
  return {
    target: MONITOR,
    changeOrigin: true,
    ws,
    configure(proxy) {
      const rewrite = (req: { getHeader(n: string): unknown; setHeader(n: string, v: string): void }) => {
        const origin = req.getHeader('origin');
        if (typeof origin === 'string' && DEV_ORIGIN.test(origin)) req.setHeader('origin', MONITOR);
      };
      proxy.on('proxyReq', rewrite);
      proxy.on('proxyReqWs', rewrite);
    },
  };
}

export default defineConfig({
  plugins: [react()],
  server: {
    port: DEV_PORT,
    strictPort: true,
    host: '127.0.0.1',
    proxy: {
      '/ws': toMonitor(true),
      '/api': toMonitor(false),
      '/metrics': toMonitor(false),
    },
  },
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: false,
    assetsInlineLimit: 4096,
    reportCompressedSize: true,
  },
});
