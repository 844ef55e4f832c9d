export * from "./errors.js";
export * from "./sizes.js";
export * from "./volumes.js";
export * from "./paths.js";
export * from "./api.js";
export * from "./checkpoints.js";
export * from "./sandboxes.js";
export * from "./files.js";
