/** cairnd's native helper, built by scripts/setup.sh from packages/server/native/cairn-mount.c. */
import { fileURLToPath } from "node:url";

export const MOUNT_HELPER = fileURLToPath(new URL("../../native/cairn-mount", import.meta.url));
