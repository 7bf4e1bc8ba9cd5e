/**
 * A compile-time check, run by `deno check` in `deno task test`: each Zod
 * schema of `lib/config/schemas.ts` accepts exactly the type a user writes
 * (`types.ts`) and gives exactly the resolved type. A field added to one
 * side only makes an entry below false and `_contracts` a type error.
 *
 * @module
 */
import type { z } from "zod";
import type * as S from "../lib/config/schemas.ts";
import type * as T from "../lib/config/types.ts";

/** True when `A` and `B` are the same type (not merely assignable). */
type Same<A, B> = (<X>() => X extends A ? 1 : 2) extends
  (<X>() => X extends B ? 1 : 2) ? true : false;

/** True when schema `Z` takes exactly `In` and gives exactly `Out`. */
type Typed<Z extends z.ZodType, In, Out> =
  [Same<z.input<Z>, In>, Same<z.output<Z>, Out>] extends [true, true] ? true
    : false;

/** [schema, the type a user writes, the resolved type], one per concept. */
type Contracts = [
  [
    typeof S.LogActionConfigSchema,
    T.LogActionConfig,
    T.ResolvedLogActionConfig,
  ],
  [
    typeof S.DeclarativeWorkloadSchema,
    T.DeclarativeWorkload,
    T.ResolvedDeclarativeWorkload,
  ],
  [
    typeof S.BenchmarkConfigSchema,
    T.BenchmarkConfig,
    T.ResolvedBenchmarkConfig,
  ],
  [
    typeof S.AutoConcurrencyConfigSchema,
    T.AutoConcurrencyConfig,
    T.ResolvedAutoConcurrencyConfig,
  ],
  [typeof S.TimeoutsConfigSchema, T.TimeoutsConfig, T.TimeoutsConfig],
  [typeof S.HandlerConfigSchema, T.HandlerConfig, T.ResolvedHandlerConfig],
  [
    typeof S.HealthcheckConfigSchema,
    T.HealthcheckConfig,
    T.ResolvedHealthcheckConfig,
  ],
  [
    typeof S.EngineMetricsConfigSchema,
    T.EngineMetricsConfig,
    T.ResolvedEngineMetricsConfig,
  ],
  [typeof S.FailureBodySchema, T.FailureBody, T.FailureBody],
  [
    typeof S.LoadProbeConfigSchema,
    T.LoadProbeConfig,
    T.ResolvedLoadProbeConfig,
  ],
  [
    typeof S.ResumeBufferConfigSchema,
    T.ResumeBufferConfig,
    T.ResolvedResumeBufferConfig,
  ],
  [typeof S.CanaryConfigSchema, T.CanaryConfig, T.ResolvedCanaryConfig],
  [typeof S.WorkerConfigSchema, T.WorkerConfig, T.ResolvedWorkerConfig],
];

type Checked<C> = {
  [K in keyof C]: C[K] extends [infer Z extends z.ZodType, infer In, infer Out]
    ? Typed<Z, In, Out>
    : false;
};

export const _contracts: false extends Checked<Contracts>[number] ? never
  : true = true;
