import { defineConfig } from "vite";

// `npm run dev` serves the app with hot reload and forwards the API to a running
// keybound-demo. DPoP proofs name the page's origin, so start the server with
// KEYBOUND_PUBLIC_ORIGIN=http://localhost:5173 while developing this way.
const server = process.env.KEYBOUND_DEMO_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": server,
      "/session": server,
      "/.well-known": server,
      "/metrics": server,
    },
  },
});
