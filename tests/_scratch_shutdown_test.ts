import { startControlPlane } from "../lib/dev/control_plane.ts";
import { startWorkerWith } from "./helpers/reporting.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, FAST, post, waitFor } from "./helpers/worker.ts";

for (const mode of ["503", "delay5000"]) {
  Deno.test(`shutdown time with cp ${mode}`, async () => {
    const cp = await startControlPlane();
    const up = startUpstream();
    const w = await startWorkerWith({ modelServerUrl: up.url, handlers: [{ route: "/echo", allowParallelRequests: true }] }, { REPORT_ADDR: cp.url }, FAST);
    await waitFor(() => w.lifecycle.ready);
    if (mode === "503") { cp.setStatusReply({ status: 503 }); cp.setDeleteReply({ status: 503 }); }
    else cp.setDelayMs(5000);
    const r = await post(w.url, "/echo", envelope({}));
    await r.body?.cancel();
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await w.shutdown();
    console.log(mode, "shutdown took", Date.now() - t0, "ms; drain seconds 2");
    await up.close(); await cp.close();
    await Deno.remove(w.dir, { recursive: true });
  });
}
