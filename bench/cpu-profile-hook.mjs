// `node --cpu-prof` for a process the benchmarks start through a helper that takes no Node flags
// (`--cpu-prof` is not allowed in NODE_OPTIONS, `--import` is):
//
//   NODE_OPTIONS="--import=/abs/path/bench/cpu-profile-hook.mjs" KEYHOLE_BENCH_CPU_PROF_DIR=DIR
//
// starts V8's sampling profiler in the process and writes DIR/<pid>.cpuprofile when it exits
// (the in-thread inspector session answers synchronously, so the `exit` handler can stop it).
// Summarise with `node bench/cpuprofile-summary.mjs DIR`.
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.KEYHOLE_BENCH_CPU_PROF_DIR;
if (dir !== undefined && dir !== "") {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.start");
  process.on("exit", () => {
    session.post("Profiler.stop", (error, result) => {
      if (error) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
