// The browser tests' cluster (tests/lib/cluster.mjs): ports from 24000
// (CAIRN_CONSOLE_PORT_BASE moves them), then 24300 and 24600 if a port is
// taken, all in 24000-24999, the console tests' own; every node backs up to
// file://DIR/backups in the cluster's temporary directory.
import { startCluster as start } from "../lib/cluster.mjs";

export function startCluster(buildDir) {
  const first = Number(process.env.CAIRN_CONSOLE_PORT_BASE || 24000);
  return start(buildDir, { name: "console", bases: [first, first + 300, first + 600], backup: true });
}
