// `rzoo report`: one self-contained HTML page (report.html) of charts and tables for a run
// folder, a comparison folder (`rzoo compare`) or a study folder (`rzoo tune`), told apart by
// their files (study.json, compare.json, else metrics.json / config.yaml / history.csv).
//
// - run: training loss and the validation metrics per epoch (history.csv), the test metrics
//   against K (metrics.json), the run's metrics and config;
// - comparison: per metric family, a bar per model and K with its 95% bootstrap interval and
//   the paired tests against the baseline (compare.csv; `*` t-test, `†` Wilcoxon), metric@K
//   curves per model (compare.json) and each model's validation curve (its run's history.csv);
// - study: the objective against each hyperparameter, the trial history with the best so far,
//   the best trial's validation curve, and tables of the trials and the test results.
//
// The page opens offline: Chart.js (Debian's libjs-chart.js, embedded in rzoo at build time) is
// inlined, and every value from the folder reaches the page as escaped JSON, drawn as text (never
// as markup). Charts missing their inputs (a run older than history.csv) are skipped with a note.
// The page checks itself after rendering and writes what it found into
// <pre id="rzoo-render-status">charts=N rendered=M errors=E</pre> (a chart counts as rendered
// when its canvas has a painted pixel; errors are window errors and console.error calls).
#pragma once
#include <string>

namespace rzoo {

// Writes the report of the folder `dir` to `out` (default DIR/report.html), atomically, and
// returns the path written. Fails (rzoo::Error) on a folder that is none of the three kinds, on a
// malformed input file (naming it), and when this rzoo was built without Chart.js.
std::string write_report(const std::string& dir, const std::string& out = "");

// Whether this build holds Chart.js (chart.min.js was found when it was configured).
bool report_available();

}  // namespace rzoo
