/**
 * The control plane of a chaos run, with outages: the stand-in of
 * `lib/dev/control_plane.ts` (real RSA key, records `/worker_status/` and
 * `/delete_requests/`), answering 503 for a while, slow for a while, or
 * gone (port closed, then a new stand-in on the same port with the same
 * key). It keeps which recorded bodies it accepted (2xx), which is what the
 * books are read from.
 *
 * @module
 */
import {
  type ControlPlane,
  type Recorded,
  startControlPlane,
} from "../../dev/control_plane.ts";
import { controlPlaneKeys } from "../helpers/dev.ts";
import { accepted } from "../helpers/reporting.ts";
import type { Rng } from "./rng.ts";

/** Kinds of outage. */
export type OutageKind = "503" | "slow" | "down";

/** One stand-in instance and the ranges of records it refused. */
interface Instance {
  cp: ControlPlane;
  refusedStatus: [number, number][];
  refusedDelete: [number, number][];
}

/** What happened to the autoscaler during a run. */
export interface OutageLog {
  kind: OutageKind;
  startMs: number;
  ms: number;
}

/** The run's control plane. */
export class Autoscaler {
  #instances: Instance[] = [];
  #keys: CryptoKeyPair;
  #port = 0;
  #workerUrl: string | undefined;
  #down = false;
  readonly outages: OutageLog[] = [];

  private constructor(keys: CryptoKeyPair) {
    this.#keys = keys;
  }

  /** Starts the first stand-in on a free port. */
  static async start(): Promise<Autoscaler> {
    const a = new Autoscaler(await controlPlaneKeys());
    await a.#spawn();
    return a;
  }

  async #spawn(): Promise<void> {
    const cp = await startControlPlane({
      port: this.#port,
      keyPair: this.#keys,
      ...(this.#workerUrl ? { workerUrl: this.#workerUrl } : {}),
    });
    this.#port = cp.port;
    this.#instances.push({ cp, refusedStatus: [], refusedDelete: [] });
  }

  get #current(): Instance {
    return this.#instances[this.#instances.length - 1];
  }

  /** Base URL (`REPORT_ADDR`). */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The current stand-in. */
  get cp(): ControlPlane {
    return this.#current.cp;
  }

  /** Sets the worker URL `/route/` hands out. */
  setWorkerUrl(url: string): void {
    this.#workerUrl = url;
    this.cp.setWorkerUrl(url);
  }

  /** Signs `message` with the autoscaler key. */
  sign(message: string): Promise<string> {
    return this.cp.sign(message);
  }

  /**
   * One outage of `kind` for `ms`. For `slow`, answers are delayed by
   * `slowMs`; the caller keeps at least `slowMs` of normal time after it,
   * so no delayed answer straddles the next outage.
   */
  async outage(kind: OutageKind, ms: number, slowMs: number): Promise<void> {
    const startMs = performance.now();
    this.outages.push({ kind, startMs, ms });
    if (kind === "down") {
      this.#down = true;
      await this.cp.close();
      await new Promise((r) => setTimeout(r, ms));
      await this.#spawn();
      this.#down = false;
      return;
    }
    const inst = this.#current;
    if (kind === "slow") {
      inst.cp.setDelayMs(slowMs);
      await new Promise((r) => setTimeout(r, ms));
      inst.cp.setDelayMs(0);
      return;
    }
    // Switching the reply and reading the record counts in one synchronous
    // step splits the records exactly (the stand-in answers synchronously
    // after recording when it has no delay).
    const s0 = inst.cp.statusReports.length;
    const d0 = inst.cp.deleteReports.length;
    inst.cp.setStatusReply({ status: 503 });
    inst.cp.setDeleteReply({ status: 503 });
    await new Promise((r) => setTimeout(r, ms));
    inst.cp.setStatusReply(undefined);
    inst.cp.setDeleteReply(undefined);
    inst.refusedStatus.push([s0, inst.cp.statusReports.length]);
    inst.refusedDelete.push([d0, inst.cp.deleteReports.length]);
  }

  /**
   * Runs outages picked from `kinds` by `rng` until `signal` aborts:
   * normal for 0.5-2 s (and at least `slowMs` + 300 ms), then one outage of
   * 0.3-1.5 s.
   */
  async chaos(
    kinds: readonly OutageKind[],
    rng: Rng,
    slowMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    if (kinds.length === 0) return;
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
    while (!signal.aborted) {
      await wait(Math.max(rng.int(500, 2000), slowMs + 300));
      if (signal.aborted) break;
      await this.outage(rng.pick(kinds), rng.int(300, 1500), slowMs);
    }
  }

  /** `true` while the port is closed. */
  get down(): boolean {
    return this.#down;
  }

  /** Status bodies the autoscaler accepted, in arrival order. */
  acceptedStatus(): Recorded[] {
    return this.#instances.flatMap((i) =>
      accepted(i.cp.statusReports, i.refusedStatus)
    );
  }

  /** Delete bodies the autoscaler accepted, in arrival order. */
  acceptedDeletes(): Recorded[] {
    return this.#instances.flatMap((i) =>
      accepted(i.cp.deleteReports, i.refusedDelete)
    );
  }

  /** Every status body received (accepted or not). */
  allStatus(): Recorded[] {
    return this.#instances.flatMap((i) => i.cp.statusReports);
  }

  /** Closes the current stand-in. */
  async close(): Promise<void> {
    await this.cp.close();
  }
}
