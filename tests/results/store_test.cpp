// The store (results/store.h): rows, run lifecycle, claims, schema migrations.
#include "results/store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "results/compare.h"
#include "results/report.h"
#include "results/schema.sql.h"
#include "tests/results/store_fixture.h"
#include "tests/test_util.h"

namespace moe::results {
namespace {

using moe::testing::expect_error;

TEST_F(StoreTest, NonFiniteValuesRoundTrip) {
  Store s(path("a.sqlite"));
  s.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  s.add_metric(id, 1, "train", "nan", NAN);
  s.add_metric(id, 1, "train", "inf", INFINITY);
  s.add_metric(id, 1, "train", "ninf", -INFINITY);
  s.add_metric(id, 1, "train", "one", 1.0);
  s.flush();
  auto q = s.db().prepare("SELECT name, value, value_text FROM metrics ORDER BY name");
  std::map<std::string, double> got;
  while (q.step()) got[q.get_text(0)] = decode_value(q, 1, 2);
  EXPECT_TRUE(std::isnan(got["nan"]));
  EXPECT_EQ(got["inf"], INFINITY);
  EXPECT_EQ(got["ninf"], -INFINITY);
  EXPECT_EQ(got["one"], 1.0);
}

TEST_F(StoreTest, RunLifecycleAndSchemaVersion) {
  Store s(path("a.sqlite"));
  s.ensure_run({"k", "sw", "m", "{\"seed\":3}", 3, "", "", ""});
  s.ensure_run({"k", "sw", "other", "{}", 9, "", "", ""});  // existing key: only the label follows
  auto r = s.find_run("k");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RunStatus::kQueued);
  EXPECT_EQ(r->method, "other");
  EXPECT_EQ(r->seed, 3);
  EXPECT_EQ(r->config_json, "{\"seed\":3}");
  s.ensure_run({"k", "sw", "m", "{}", 3, "", "", ""});
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  EXPECT_EQ(s.find_run("k")->status, RunStatus::kRunning);
  EXPECT_EQ(s.find_run("k")->attempts, 1);
  EXPECT_THROW(s.finish_run(id, RunStatus::kQueued, ""), std::logic_error) << "not an end state";
  s.finish_run(id, RunStatus::kFailed, "non-finite training loss");
  EXPECT_EQ(s.find_run("k")->status, RunStatus::kFailed);
  EXPECT_EQ(s.find_run("k")->error, "non-finite training loss");
  // Stored by name (what plain sqlite3 users and the views read), read back as the enum.
  {
    auto v = s.db().prepare("SELECT status FROM runs WHERE run_key = 'k'");
    v.step();
    EXPECT_EQ(v.get_text(0), "failed");
  }
  for (auto st : {RunStatus::kQueued, RunStatus::kRunning, RunStatus::kCompleted,
                  RunStatus::kFailed, RunStatus::kInterrupted}) {
    EXPECT_EQ(parse_status(status_name(st)), st);
  }
  EXPECT_THROW(parse_status("done"), DbError);
  {
    auto v = s.db().prepare("PRAGMA user_version");
    v.step();
    EXPECT_EQ(v.get_int(0), kSchemaVersion);
  }
  s.db().exec("PRAGMA user_version = 99");
  expect_error([&] { Store again(path("a.sqlite")); }, "schema version 99 is newer");
}

TEST_F(StoreTest, OlderFilesMigrateKeepingTheirRows) {
  // A version-2 file as moe-lab wrote it: the version-1 tables (no attempt column).
  {
    Db old(path("old.sqlite"), false);
    old.exec(kTablesV1);
    old.exec(
        "INSERT INTO runs(id, run_key, sweep, method, seed, config, status, attempts) VALUES "
        "(1, 'k1', 'sw', 'm', 0, '{}', 'completed', 2), (2, 'k2', 'sw', 'm', 1, '{}', 'queued', 0);"
        "INSERT INTO metrics(run_id, step, split, name, value) VALUES "
        "(1, 5, 'final', 'test_accuracy', 0.75), (1, 5, 'final', 'active_params', 10);"
        "INSERT INTO layer_stats(run_id, step, split, layer, name, value) VALUES "
        "(1, 5, 'test', 0, 'mean_experts', 2);"
        "PRAGMA user_version = 2");
  }
  // A reader migrates it (moe query here), keeping its rows.
  std::ostringstream out;
  run_query(path("old.sqlite"),
            "SELECT (SELECT min(attempt) || '/' || count(*) FROM metrics) AS m, "
            "(SELECT attempt FROM layer_stats) AS l, "
            "(SELECT test_accuracy FROM final WHERE run_key = 'k1') AS acc, "
            "(SELECT mean_experts FROM layers) AS k, "
            "(SELECT count(*) FROM sqlite_master WHERE type = 'view') AS views",
            QueryFormat::kCsv, out);
  EXPECT_EQ(out.str(), "m,l,acc,k,views\n2/2,2,0.75,2,7\n");
  Store s(path("old.sqlite"));
  auto v = s.db().prepare("PRAGMA user_version");
  v.step();
  EXPECT_EQ(v.get_int(0), kSchemaVersion);
}

/// The rows of sql, one "a,b,c" line each.
std::string rows(Db& db, const std::string& sql) {
  auto s = db.prepare(sql);
  std::string out;
  while (s.step()) {
    for (int i = 0; i < s.columns(); ++i) out += (i ? "," : "") + s.get_text(i);
    out += "\n";
  }
  return out;
}

TEST_F(StoreTest, AVersion5DatabaseOpensWithItsSeriesInColumnsAndPlots) {
  // tests/data/schema_v5.sqlite: moe sweep run tests/data/schema_v5.toml by the last
  // version-5 moe (0378878): indices in names ('load/3', 'experts_hist/2',
  // 'accuracy/depth 2', 'mean_experts/depth 2'), re-evaluations in splits
  // 'test@threshold=0.2' with an 'option_value' row.
  const auto db_path = path("v5.sqlite");
  const std::string fixture = std::string(MOE_SOURCE_DIR) + "/tests/data/schema_v5.sqlite";
  std::filesystem::copy_file(fixture, db_path);
  std::filesystem::copy_file(fixture, path("shard.sqlite"));
  std::ostringstream out;  // moe compare, a reader, migrates it
  print_comparison(compare_methods(db_path, "v5", "top2", "test_accuracy"), QueryFormat::kCsv, out);
  EXPECT_NE(out.str().find("top_p"), std::string::npos) << out.str();
  Db db(db_path, true);
  EXPECT_EQ(rows(db, "PRAGMA user_version"), std::to_string(kSchemaVersion) + "\n");
  // No index, level or option is left in a name or split; only 'option_value' rows go.
  EXPECT_EQ(rows(db,
                 "SELECT (SELECT count(*) FROM metrics), (SELECT count(*) FROM layer_stats), "
                 "(SELECT count(*) FROM metrics WHERE name GLOB '*/*' AND name NOT GLOB "
                 "'aux/*' AND name NOT GLOB 'flops_per_token/*') + (SELECT count(*) FROM "
                 "layer_stats WHERE name GLOB '*/*') + (SELECT count(*) FROM metrics WHERE "
                 "split GLOB '*@*' OR name = 'option_value')"),
            "444,736,0\n");
  EXPECT_EQ(rows(db,
                 "SELECT name, count(*), min(item), max(item) FROM layer_stats WHERE item IS "
                 "NOT NULL GROUP BY name ORDER BY name"),
            "experts_hist,96,0,3\nload,128,0,3\n");
  EXPECT_EQ(rows(db,
                 "SELECT name, group_concat(DISTINCT level) FROM metrics WHERE level IS NOT "
                 "NULL GROUP BY name ORDER BY name"),
            "level_accuracy,depth 1,depth 2,depth 3\nlevel_mean_experts,depth 1,depth 2,depth 3\n");
  EXPECT_EQ(rows(db, "SELECT count(*) FROM layer_stats WHERE level IS NOT NULL"), "96\n");
  // The same numbers as before: the first run's level accuracies, every re-evaluation.
  EXPECT_EQ(rows(db,
                 "SELECT level, printf('%.17g', value) FROM metrics WHERE run_id = 1 AND "
                 "split = 'test' AND name = 'level_accuracy' ORDER BY rowid"),
            "depth 1,0.217391304347826\ndepth 2,0.1984126984126984\ndepth "
            "3,0.1965811965811965\n");
  EXPECT_EQ(rows(db,
                 "SELECT method, seed, option, value, printf('%.17g', test_accuracy), "
                 "mean_experts FROM reevals ORDER BY method, seed, value"),
            "top_p,0,threshold,0.2,0.2262569832402234,1.0\n"
            "top_p,0,threshold,0.6,0.2039106145251396,3.0\n"
            "top_p,1,threshold,0.2,0.2067039106145251,1.0\n"
            "top_p,1,threshold,0.6,0.2318435754189944,3.0\n");
  EXPECT_EQ(rows(db,
                 "SELECT count(*) FROM layer_stats WHERE split = 'reeval' AND option = "
                 "'threshold' AND option_value IN (0.2, 0.6)"),
            "176\n");
  // moe merge of a version-5 shard: its rows arrive in the version-6 form too.
  merge_databases(path("merged.sqlite"), {path("shard.sqlite")});
  {
    Db merged(path("merged.sqlite"), true);
    const std::string same =
        "SELECT r.run_key, m.step, m.split, m.name, m.item, m.level, m.option, m.option_value, "
        "printf('%.17g', m.value) FROM layer_stats m JOIN runs r ON r.id = m.run_id "
        "ORDER BY 1, 2, 3, 4, 5, 6, 7, 8";
    EXPECT_EQ(rows(merged, same), rows(db, same));
    EXPECT_EQ(rows(merged, "SELECT * FROM reevals ORDER BY run_key, value"),
              rows(db, "SELECT * FROM reevals ORDER BY run_key, value"));
  }
  // It plots.
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  for (auto plot : {&plot_load, &plot_layers, &plot_difficulty, &plot_reevals, &plot_routing}) {
    const auto png = plot(db_path, "v5", path("plots"));
    EXPECT_TRUE(std::filesystem::exists(png)) << png;
  }
}

TEST_F(StoreTest, ClaimsAreAtomicAndAttemptsNeverMix) {
  Store a(path("c.sqlite")), b(path("c.sqlite"));  // two processes' connections
  a.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  auto queued = [](const RunRow& r) { return r.status == RunStatus::kQueued; };
  const auto ca = a.claim_run("k", "h", 11, queued);
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca->attempt, 1);
  EXPECT_FALSE(b.claim_run("k", "h", 12, queued)) << "the run is no longer queued";
  const auto id = a.start_attempt("k", 1, "h", 13, "cpu", "t", "v");
  EXPECT_EQ(a.find_run("k")->pid, 13);
  a.add_metric(id, 1, "train", "loss", 1.0);
  a.flush();
  // b takes the run over (as for a stale heartbeat): a can write nothing more; a's rows
  // stay until b's worker says which of them its continuation keeps.
  const auto cb = b.claim_run("k", "h2", 14, [](const RunRow&) { return true; });
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->attempt, 2);
  auto count = [&] {
    auto q = b.db().prepare("SELECT count(*) FROM metrics");
    q.step();
    return q.get_int(0);
  };
  EXPECT_EQ(count(), 1);
  a.add_metric(id, 2, "train", "loss", 2.0);
  expect_error([&] { a.flush(); }, "attempt 1 is no longer current");
  EXPECT_FALSE(a.heartbeat(id, 1));
  EXPECT_FALSE(a.finish_run(id, RunStatus::kCompleted, ""));
  expect_error([&] { a.start_attempt("k", 1, "h", 15, "cpu", "t", "v"); },
               "attempt 1 is not current (the run is running at attempt 2)");
  EXPECT_EQ(b.start_attempt("k", 2, "h2", 16, "cpu", "t", "v"), id);
  expect_error([&] { a.keep_rows_through(id, -1, false); }, "attempt 1 is no longer current");
  b.keep_rows_through(id, -1, false);  // a fresh start
  EXPECT_EQ(count(), 0);
  b.add_metric(id, 1, "train", "loss", 3.0);
  EXPECT_TRUE(b.heartbeat(id, 2));
  EXPECT_TRUE(b.finish_run(id, RunStatus::kCompleted, ""));
  EXPECT_EQ(count(), 1);
  auto q = b.db().prepare("SELECT attempt, value FROM metrics");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.get_int(0), 2);
  EXPECT_EQ(q.get_double(1), 3.0);
  EXPECT_EQ(b.find_run("k")->status, RunStatus::kCompleted);
  EXPECT_EQ(b.find_run("k")->attempts, 2);
}

// A continuation from a checkpoint keeps the rows up to its step as its own attempt's and
// deletes the rest; at the last step, the evaluations written after the checkpoint go too.
TEST_F(StoreTest, KeepRowsThroughKeepsTheCheckpointsRowsAsTheNewAttempts) {
  Store s(path("k.sqlite"));
  s.ensure_run({"k", "sw", "m", "{}", 0, "", "", ""});
  auto rows = [&] {
    std::string out;
    auto q = s.db().prepare(
        "SELECT step || split || name || '@' || attempt FROM metrics ORDER BY step, split, name");
    while (q.step()) out += q.get_text(0) + " ";
    auto l =
        s.db().prepare("SELECT step || split || '@' || attempt FROM layer_stats ORDER BY step");
    while (l.step()) out += "L" + l.get_text(0) + " ";
    return out;
  };
  const auto write = [&](int64_t id) {
    for (int64_t step = 1; step <= 4; ++step) {
      s.add_metric(id, step, "train", "loss", 1.0);
      s.add_layer_stat(id, step, "train", 0, "mean_experts", 1.0);
    }
    s.add_metric(id, 2, "valid", "loss", 1.0);
    s.add_metric(id, 2, "resume", "from_step", 2.0);
    for (const char* split : {"valid", "test", "final"}) s.add_metric(id, 4, split, "loss", 1.0);
    s.flush();
  };
  const auto id = s.start_run("k", "h", 1, "cpu", "t", "v");
  write(id);
  s.claim_run("k", "h", 2, [](const RunRow&) { return true; });
  s.start_attempt("k", 2, "h", 2, "cpu", "t", "v");
  s.keep_rows_through(id, 2, false);  // a checkpoint at step 2 of 4
  EXPECT_EQ(rows(), "1trainloss@2 2trainloss@2 2validloss@2 L1train@2 L2train@2 ");
  write(id);  // (duplicates of steps 1-2 only to test the next call)
  s.claim_run("k", "h", 3, [](const RunRow&) { return true; });
  s.start_attempt("k", 3, "h", 3, "cpu", "t", "v");
  s.keep_rows_through(id, 4, true);  // the checkpoint at the last step: evaluations redone
  EXPECT_EQ(rows().find("4validloss"), std::string::npos) << rows();
  EXPECT_EQ(rows().find("4finalloss"), std::string::npos) << rows();
  EXPECT_NE(rows().find("4trainloss@3"), std::string::npos) << rows();
  EXPECT_NE(rows().find("L4train@3"), std::string::npos) << rows();
}

}  // namespace
}  // namespace moe::results
