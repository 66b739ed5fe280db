#pragma once
// The results store's schema (documented in results/README.md). Tables are created at
// version 1 and moved forward by the migrations below; the views are always those of the
// current version: every migration drops and recreates them (kViews).
namespace moe::results {

inline constexpr const char* kTablesV1 = R"SQL(
CREATE TABLE sweeps(
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  spec_hash TEXT NOT NULL,
  created_at REAL NOT NULL
) STRICT;
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  run_key TEXT NOT NULL UNIQUE,
  sweep TEXT,
  method TEXT NOT NULL,
  seed INTEGER NOT NULL,
  config TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','interrupted')),
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  heartbeat REAL,
  started_at REAL,
  finished_at REAL,
  wall_seconds REAL,
  host TEXT, pid INTEGER, device TEXT, libtorch TEXT, code_version TEXT
) STRICT;
CREATE INDEX runs_sweep ON runs(sweep, status);
CREATE TABLE metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  split TEXT NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  value_text TEXT
) STRICT;
CREATE INDEX metrics_run ON metrics(run_id, split, name, step);
CREATE TABLE layer_stats(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  split TEXT NOT NULL,
  layer INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  value_text TEXT
) STRICT;
CREATE INDEX layer_stats_run ON layer_stats(run_id, split, layer, name);

)SQL";

/// Version 3: every metric and layer-statistic row belongs to one attempt of its run
/// (runs.attempts when it was written). Rows already present belong to their run's last
/// attempt.
inline constexpr const char* kMigrateV3 = R"SQL(
ALTER TABLE metrics ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE layer_stats ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
UPDATE metrics SET attempt = coalesce((SELECT max(attempts, 1) FROM runs WHERE runs.id = metrics.run_id), 1);
UPDATE layer_stats SET attempt = coalesce((SELECT max(attempts, 1) FROM runs WHERE runs.id = layer_stats.run_id), 1);
)SQL";

/// Version 5: a run's label in parts (runs.preset: the method axis value; runs.context:
/// the other grid axes; runs.tune: the [tune] axes), the sweep's tune metric, and the
/// values chosen on the validation split (selections, written by `moe sweep run`).
inline constexpr const char* kMigrateV5 = R"SQL(
ALTER TABLE runs ADD COLUMN preset TEXT;
ALTER TABLE runs ADD COLUMN context TEXT;
ALTER TABLE runs ADD COLUMN tune TEXT;
ALTER TABLE sweeps ADD COLUMN tune_metric TEXT;
CREATE TABLE selections(
  sweep TEXT NOT NULL,
  context TEXT NOT NULL,
  preset TEXT NOT NULL,
  tune TEXT NOT NULL,
  metric TEXT NOT NULL,
  score REAL,
  n INTEGER NOT NULL,
  candidates INTEGER NOT NULL,
  chosen_at REAL NOT NULL,
  PRIMARY KEY (sweep, context, preset)
) STRICT;
)SQL";

/// Version 6: indexed series in columns, not in names. Every metric and layer-statistic row
/// gains item (the expert of 'load', the experts-used count of 'experts_hist'), level (the
/// difficulty level of 'level_accuracy' and 'level_mean_experts'), option and option_value
/// (split 'reeval': the inference option a re-evaluation set). kNormalizeV6 then moves the
/// rows of earlier versions there.
inline constexpr const char* kMigrateV6 = R"SQL(
ALTER TABLE metrics ADD COLUMN item INTEGER;
ALTER TABLE metrics ADD COLUMN level TEXT;
ALTER TABLE metrics ADD COLUMN option TEXT;
ALTER TABLE metrics ADD COLUMN option_value REAL;
ALTER TABLE layer_stats ADD COLUMN item INTEGER;
ALTER TABLE layer_stats ADD COLUMN level TEXT;
ALTER TABLE layer_stats ADD COLUMN option TEXT;
ALTER TABLE layer_stats ADD COLUMN option_value REAL;
CREATE INDEX metrics_reeval ON metrics(run_id, option, option_value) WHERE split = 'reeval';
)SQL";

/// Rows written before version 6 (indices in names: 'load/3', 'experts_hist/2',
/// 'accuracy/depth 2', 'mean_experts/depth 2'; re-evaluations in split 'test@K=2' with an
/// 'option_value' row) in the version-6 form. Touches only such rows: run again after
/// `moe merge` copies rows from an older database. The only place a name is parsed.
inline constexpr const char* kNormalizeV6 = R"SQL(
UPDATE layer_stats SET item = CAST(substr(name, 6) AS INTEGER), name = 'load'
  WHERE name GLOB 'load/[0-9]*';
UPDATE layer_stats SET item = CAST(substr(name, 14) AS INTEGER), name = 'experts_hist'
  WHERE name GLOB 'experts_hist/[0-9]*';
UPDATE metrics SET level = substr(name, 10), name = 'level_accuracy' WHERE name GLOB 'accuracy/*';
UPDATE metrics SET level = substr(name, 14), name = 'level_mean_experts'
  WHERE name GLOB 'mean_experts/*';
UPDATE layer_stats SET level = substr(name, 14), name = 'level_mean_experts'
  WHERE name GLOB 'mean_experts/*';
UPDATE metrics SET option = substr(split, 6, instr(split, '=') - 6),
  option_value = coalesce(
    (SELECT o.value FROM metrics o WHERE o.run_id = metrics.run_id AND o.split = metrics.split
       AND o.attempt = metrics.attempt AND o.name = 'option_value'),
    CAST(substr(split, instr(split, '=') + 1) AS REAL))
  WHERE split GLOB 'test@*=*';
UPDATE layer_stats SET option = substr(split, 6, instr(split, '=') - 6),
  option_value = coalesce(
    (SELECT o.value FROM metrics o WHERE o.run_id = layer_stats.run_id
       AND o.split = layer_stats.split AND o.attempt = layer_stats.attempt
       AND o.name = 'option_value'),
    CAST(substr(split, instr(split, '=') + 1) AS REAL))
  WHERE split GLOB 'test@*=*';
DELETE FROM metrics WHERE split GLOB 'test@*=*' AND name = 'option_value';
UPDATE metrics SET split = 'reeval' WHERE split GLOB 'test@*=*';
UPDATE layer_stats SET split = 'reeval' WHERE split GLOB 'test@*=*';
)SQL";

/// Version 4: non-embedding parameter counts in final / by_method, the pareto view on
/// non-embedding active parameters, and the paired view (views only).
///
/// The views of the current version. They read only the rows of each run's current
/// attempt (metrics.attempt = runs.attempts).
inline constexpr const char* kViews = R"SQL(
DROP VIEW IF EXISTS final;
DROP VIEW IF EXISTS by_method;
DROP VIEW IF EXISTS pareto;
DROP VIEW IF EXISTS layers;
DROP VIEW IF EXISTS reevals;
DROP VIEW IF EXISTS paired;
DROP VIEW IF EXISTS selected;
CREATE VIEW final AS
SELECT r.id AS run_id, r.run_key, r.sweep, r.method, r.seed, r.status,
  max(CASE WHEN m.name = 'test_accuracy' THEN m.value END) AS test_accuracy,
  max(CASE WHEN m.name = 'test_loss' THEN m.value END) AS test_loss,
  max(CASE WHEN m.name = 'test_perplexity' THEN m.value END) AS test_perplexity,
  max(CASE WHEN m.name = 'valid_accuracy' THEN m.value END) AS valid_accuracy,
  max(CASE WHEN m.name = 'active_params' THEN m.value END) AS active_params,
  max(CASE WHEN m.name = 'nonembed_active_params' THEN m.value END) AS nonembed_active_params,
  max(CASE WHEN m.name = 'total_params' THEN m.value END) AS total_params,
  max(CASE WHEN m.name = 'nonembed_total_params' THEN m.value END) AS nonembed_total_params,
  max(CASE WHEN m.name = 'trainable_params' THEN m.value END) AS trainable_params,
  max(CASE WHEN m.name = 'flops_per_token' THEN m.value END) AS flops_per_token,
  max(CASE WHEN m.name = 'mean_experts' THEN m.value END) AS mean_experts,
  max(CASE WHEN m.name = 'train_tokens_per_s' THEN m.value END) AS train_tokens_per_s,
  max(CASE WHEN m.name = 'eval_tokens_per_s' THEN m.value END) AS eval_tokens_per_s,
  max(CASE WHEN m.name = 'harness_seconds' THEN m.value END) AS harness_seconds,
  r.wall_seconds
FROM runs r LEFT JOIN metrics m ON m.run_id = r.id AND m.split = 'final' AND m.attempt = r.attempts
GROUP BY r.id;

CREATE VIEW by_method AS
SELECT sweep, method, n,
  printf('%.4f ± %.4f', test_accuracy, test_accuracy_std) AS test_accuracy_mean_std,
  test_accuracy, test_accuracy_std, test_loss, test_perplexity, active_params,
  active_params_std, nonembed_active_params, total_params, nonembed_total_params,
  flops_per_token, mean_experts, train_tokens_per_s, wall_seconds
FROM (
  SELECT sweep, method, count(*) AS n,
    avg(test_accuracy) AS test_accuracy,
    CASE WHEN count(*) > 1 THEN sqrt(max((sum(test_accuracy * test_accuracy)
         - sum(test_accuracy) * sum(test_accuracy) / count(*)) / (count(*) - 1), 0))
         ELSE 0 END AS test_accuracy_std,
    avg(test_loss) AS test_loss,
    avg(test_perplexity) AS test_perplexity,
    avg(active_params) AS active_params,
    CASE WHEN count(*) > 1 THEN sqrt(max((sum(active_params * active_params)
         - sum(active_params) * sum(active_params) / count(*)) / (count(*) - 1), 0))
         ELSE 0 END AS active_params_std,
    avg(nonembed_active_params) AS nonembed_active_params,
    avg(total_params) AS total_params,
    avg(nonembed_total_params) AS nonembed_total_params,
    avg(flops_per_token) AS flops_per_token,
    avg(mean_experts) AS mean_experts,
    avg(train_tokens_per_s) AS train_tokens_per_s,
    avg(wall_seconds) AS wall_seconds
  FROM final WHERE status = 'completed'
  GROUP BY sweep, method);

CREATE VIEW pareto AS
SELECT a.sweep, a.method, a.n, a.test_accuracy, a.test_accuracy_std, a.nonembed_active_params,
  a.active_params
FROM by_method a
WHERE a.nonembed_active_params IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM by_method b
  WHERE b.sweep IS a.sweep AND b.test_accuracy >= a.test_accuracy
    AND b.nonembed_active_params <= a.nonembed_active_params
    AND (b.test_accuracy > a.test_accuracy OR b.nonembed_active_params < a.nonembed_active_params))
ORDER BY a.sweep, a.nonembed_active_params;

CREATE VIEW layers AS
SELECT r.sweep, r.method, r.seed, r.run_key, l.layer,
  max(CASE WHEN l.name = 'mean_experts' THEN l.value END) AS mean_experts,
  max(CASE WHEN l.name = 'entropy' THEN l.value END) AS entropy,
  max(CASE WHEN l.name = 'dropped_fraction' THEN l.value END) AS dropped_fraction
FROM layer_stats l JOIN runs r ON r.id = l.run_id AND l.attempt = r.attempts
WHERE l.split = 'test'
GROUP BY l.run_id, l.layer;
CREATE VIEW reevals AS
SELECT r.sweep, r.method, r.seed, r.run_key, m.option, m.option_value AS value,
  max(CASE WHEN m.name = 'accuracy' THEN m.value END) AS test_accuracy,
  max(CASE WHEN m.name = 'loss' THEN m.value END) AS test_loss,
  max(CASE WHEN m.name = 'mean_experts' THEN m.value END) AS mean_experts,
  max(CASE WHEN m.name = 'active_params' THEN m.value END) AS active_params,
  max(CASE WHEN m.name = 'flops_per_token' THEN m.value END) AS flops_per_token,
  max(CASE WHEN m.name = 'tokens_per_s' THEN m.value END) AS tokens_per_s,
  max(CASE WHEN m.name = 'difficulty_spearman' THEN m.value END) AS difficulty_spearman
FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts
WHERE m.split = 'reeval'
GROUP BY m.run_id, m.option, m.option_value;

CREATE VIEW paired AS
SELECT sweep, method, baseline, n, n - 1 AS df,
  accuracy_diff, accuracy_diff_sd,
  CASE WHEN n > 1 AND accuracy_diff_sd > 0 THEN accuracy_diff / (accuracy_diff_sd / sqrt(n)) END
    AS accuracy_t,
  loss_diff, loss_diff_sd,
  CASE WHEN n > 1 AND loss_diff_sd > 0 THEN loss_diff / (loss_diff_sd / sqrt(n)) END AS loss_t
FROM (
  SELECT a.sweep, a.method, b.method AS baseline, count(*) AS n,
    avg(a.test_accuracy - b.test_accuracy) AS accuracy_diff,
    CASE WHEN count(*) > 1 THEN sqrt(max((sum((a.test_accuracy - b.test_accuracy)
         * (a.test_accuracy - b.test_accuracy)) - sum(a.test_accuracy - b.test_accuracy)
         * sum(a.test_accuracy - b.test_accuracy) / count(*)) / (count(*) - 1), 0)) END
      AS accuracy_diff_sd,
    avg(a.test_loss - b.test_loss) AS loss_diff,
    CASE WHEN count(*) > 1 THEN sqrt(max((sum((a.test_loss - b.test_loss)
         * (a.test_loss - b.test_loss)) - sum(a.test_loss - b.test_loss)
         * sum(a.test_loss - b.test_loss) / count(*)) / (count(*) - 1), 0)) END
      AS loss_diff_sd
  FROM final a JOIN final b ON a.sweep IS b.sweep AND a.seed = b.seed AND a.method != b.method
  WHERE a.status = 'completed' AND b.status = 'completed'
  GROUP BY a.sweep, a.method, b.method);

CREATE VIEW selected AS
SELECT f.*, s.context, s.preset, s.tune, s.metric AS chosen_by, s.score AS chosen_score
FROM final f JOIN runs r ON r.id = f.run_id
JOIN selections s ON s.sweep = r.sweep AND s.context = coalesce(r.context, '')
  AND s.preset = coalesce(r.preset, r.method) AND s.tune = coalesce(r.tune, '');
)SQL";

}  // namespace moe::results
