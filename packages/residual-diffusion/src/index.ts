export { type DiffusionHeadConfig, diffusionHeadConfig } from "./config";
export {
  DiffusionMLP,
  type DiffusionMLPConfig,
  type DiffusionMLPOptions,
  TIMESTEP_FREQUENCIES,
} from "./network";
export { ReplayNoise, ZeroNoise } from "./noise";
export { randomDiffusionStateDict } from "./random-weights";
export {
  DIFFUSION_PREFIX,
  ResidualDiffusion,
  type ResidualDiffusionOptions,
  type ResidualDiffusionSampleOptions,
  resolveScheduler,
  type SampleStep,
  type SchedulerName,
  VAE_SCALE,
} from "./residual-diffusion";
export {
  cosCorrectlyRounded,
  cosineBetas,
  type DiffusionSchedule,
  diffusionSchedule,
  respacedSchedule,
  spaceTimesteps,
} from "./schedule";
export {
  checkStep,
  cosineRespaced,
  drawNoise,
  predictXstart,
  RespacedScheduler,
  type RespacedSchedulerOptions,
  type ScheduleSpec,
} from "./schedulers/common";
export { DDIMScheduler, type DDIMSchedulerOptions } from "./schedulers/ddim";
export { IDDPMScheduler, type IDDPMSchedulerOptions } from "./schedulers/iddpm";
export { timestepEmbedding } from "./timestep-embedding";
export type {
  NoiseSource,
  ResidualSampleOptions,
  ResidualSampler,
  ResidualScheduler,
  SchedulerStepInput,
  SchedulerStepOutput,
} from "./types";
