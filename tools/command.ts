/**
 * Running a command to its end and reading its output as text: the one way
 * the tools and their tests run a subprocess that has no input.
 *
 * @module
 */

/** How a finished command ended and what it printed. */
export interface CommandText {
  code: number;
  stdout: string;
  /** With `inherit`, `""`: the output went to this process's own. */
  stderr: string;
}

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Working directory. @default {Deno.cwd()} */
  cwd?: string;
  /** Environment added to (or, with `clearEnv`, instead of) this one's. */
  env?: Record<string, string>;
  /** Start from an empty environment. @default {false} */
  clearEnv?: boolean;
  /** Stdout to this process's own (a long build's progress). @default {false} */
  inherit?: boolean;
}

/**
 * Runs `cmd` with `args`, stdin closed, and waits for it to end.
 *
 * @example
 * ```ts
 * import { runCommand } from "./command.ts";
 * const { code, stdout } = await runCommand("echo", ["hi"]);
 * console.log(code, stdout); // 0 "hi\n"
 * ```
 */
export async function runCommand(
  cmd: string,
  args: string[],
  options: RunCommandOptions = {},
): Promise<CommandText> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: options.inherit ? "inherit" : "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: options.inherit ? "" : dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
