export { resolveConfig, type Config, type ConfigOptions } from "./config.js";
export { startCairnd, VERSION, type Cairnd } from "./server.js";
export { runServer, SERVER_HELP } from "./main.js";
export { releasePinnedNamespace } from "./host/namespace.js";
export { MetadataStore, type DatabaseConfig } from "./storage/metadata-store.js";
