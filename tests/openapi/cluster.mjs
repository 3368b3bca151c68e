// The OpenAPI tests' cluster (tests/lib/cluster.mjs): ports from 25000, then
// 25300 and 25600 if a port is taken, all in 25000-25999, these tests' own.
// CAIRN_OPENAPI_BASES=B1,B2,... chooses other bases, for machines shared by
// several test runs.
import { startCluster as start, sleep } from "../lib/cluster.mjs";

export { sleep };

const bases = process.env.CAIRN_OPENAPI_BASES
  ? process.env.CAIRN_OPENAPI_BASES.split(",").map((b) => Number.parseInt(b, 10))
  : [25000, 25300, 25600];

// extraArgs: flags given to every node (small limits make the 413s cheap).
export function startCluster(buildDir, extraArgs) {
  return start(buildDir, { name: "openapi", bases, extraArgs });
}
