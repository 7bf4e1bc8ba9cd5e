/**
 * What the kernel says about a process: CPU time (`/proc/<pid>/stat`
 * utime + stime, in clock ticks) and memory (`/proc/<pid>/status` VmRSS and
 * VmHWM). Linux only; the bench reads these around each run.
 *
 * @module
 */

let ticksPerSecond: number | undefined;

/** `getconf CLK_TCK` (100 on most Linux builds), asked once. */
export async function clockTicks(): Promise<number> {
  if (ticksPerSecond) return ticksPerSecond;
  const out = await new Deno.Command("getconf", { args: ["CLK_TCK"] })
    .output();
  const n = Number(new TextDecoder().decode(out.stdout).trim());
  ticksPerSecond = out.success && n > 0 ? n : 100;
  return ticksPerSecond;
}

/**
 * utime + stime of `pid` in ticks: every thread of the process, user and
 * kernel (children not included).
 */
export async function cpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces: count fields after its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the line are the 12th and 13th after the name.
  return Number(fields[11]) + Number(fields[12]);
}

/** The executable name of `pid` (`/proc/<pid>/comm`), to check it is deno. */
export async function commandName(pid: number): Promise<string> {
  return (await Deno.readTextFile(`/proc/${pid}/comm`)).trim();
}

/** Resident memory now and its high-water mark, in bytes. */
export interface Memory {
  rss: number;
  hwm: number;
}

/** VmRSS and VmHWM of `pid`. */
export async function memoryOf(pid: number): Promise<Memory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (name: string) =>
    Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))?.[1] ?? NaN) *
    1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** CPU seconds `pid` spent while `fn` ran. */
export async function cpuSecondsDuring<T>(
  pid: number,
  fn: () => Promise<T>,
): Promise<{ result: T; cpuSeconds: number }> {
  const hz = await clockTicks();
  const before = await cpuTicks(pid);
  const result = await fn();
  const after = await cpuTicks(pid);
  return { result, cpuSeconds: (after - before) / hz };
}
