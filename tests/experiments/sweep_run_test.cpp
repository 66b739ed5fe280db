// End-to-end: the real `moe` binary runs tiny sweeps into SQLite.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "results/report.h"
#include "results/store.h"
#include "tests/test_util.h"

namespace moe {
namespace {

class SweepRun : public ::testing::Test {
 protected:
  std::string path(const std::string& n) { return tmp_.file(n); }

  /// A sweep of `methods` tiny mod_sum trials x 2 seeds; "bad" fails at run time.
  std::string sweep(int64_t steps, bool with_bad, const std::string& train_extra = "") {
    std::ostringstream s;
    s << "name = \"e2e\"\nseeds = [0, 1]\n[base]\ndevice = \"cpu\"\nthreads = 1\n"
      << "task = { name = \"mod_sum\", seq_len = 8, modulus = 3, max_depth = 2, eval_sequences = 8 "
         "}\n"
      << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 8 }\n"
      << "moe = { num_experts = 2, experts = { name = \"ffn\", hidden = 8 } }\n"
      << "train = { steps = " << steps
      << ", batch_size = 4, warmup = 1, log_every = 1, eval_batch_size = 8" << train_extra << " }\n"
      << "[presets.dense]\n\"model.moe_every\" = 0\n[presets.switch]\n\"moe.router\" = { name = "
         "\"top_k\", k = 1 }\n"
      // Fails in the worker (the plan checks that the file exists, not what it holds): a
      // model file that is not one. (A NaN loss is the trainer's test; no in-range setting
      // overflows this tiny model in 3 steps.)
      << "[presets.bad]\n\"train.init_from\" = \"" << not_a_model() << "\"\n"
      << "[grid]\nmethod = [\"dense\", \"switch\"" << (with_bad ? ", \"bad\"" : "") << "]\n";
    std::ofstream(path("s.toml")) << s.str();
    return path("s.toml");
  }

  /// A file that exists but holds no model.
  std::string not_a_model() {
    std::ofstream(path("not_a_model.pt")) << "not a model\n";
    return path("not_a_model.pt");
  }

  int moe(const std::string& args) {
    const std::string cmd =
        std::string(MOE_BINARY) + " " + args + " > " + path("log.txt") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  /// Equal texts, or the first differing line and how many differ.
  static void expect_same_lines(const std::string& a, const std::string& b,
                                const std::string& what) {
    std::istringstream ia(a), ib(b);
    std::string la, lb, first;
    int64_t differ = 0, lines = 0;
    while (true) {
      const bool ga = static_cast<bool>(std::getline(ia, la)),
                 gb = static_cast<bool>(std::getline(ib, lb));
      if (!ga && !gb) break;
      ++lines;
      if (!ga || !gb || la != lb) {
        if (differ++ == 0) first = (ga ? la : "<end>") + "  vs  " + (gb ? lb : "<end>");
      }
    }
    EXPECT_EQ(differ, 0) << what << ": " << differ << " of " << lines
                         << " rows differ; first: " << first;
  }
  /// Every stored row but the wall-clock ones, values to 17 digits, in key order.
  std::string deterministic_rows(const std::string& db) {
    return query(db,
                 "SELECT r.run_key, m.step, m.split, m.name, printf('%.17g', m.value) AS v "
                 "FROM metrics m JOIN runs r ON r.id = m.run_id AND m.attempt = r.attempts WHERE "
                 "m.name NOT LIKE '%seconds%' AND m.name NOT LIKE '%per_s%' AND m.name NOT IN "
                 "('mfu', 'peak_rss_mb') AND m.split != 'resume' ORDER BY 1, 2, 3, 4") +
           query(db,
                 "SELECT r.run_key, l.step, l.split, l.layer, l.name, printf('%.17g', l.value) "
                 "FROM layer_stats l JOIN runs r ON r.id = l.run_id AND l.attempt = r.attempts "
                 "ORDER BY 1, 2, 3, 4, 5");
  }
  std::string query(const std::string& db, const std::string& sql) {
    std::ostringstream out;
    results::run_query(db, sql, results::QueryFormat::kCsv, out);
    return out.str();
  }

  /// Starts `moe sweep run FILE --db DB [extra]` in its own process group, output to log.
  pid_t spawn_runner(const std::string& file, const std::string& db,
                     const std::string& extra = "") {
    const std::string log = path("runner.log");
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      const std::string cmd = std::string("exec ") + MOE_BINARY + " sweep run " + file + " --db " +
                              db + " " + extra + " >> " + log + " 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    return pid;
  }

  /// A row's place in its series (schema 6's columns), for identity checks.
  inline static const std::string kSeries =
      "coalesce(item, '') || '/' || coalesce(level, '') || '/' || coalesce(option_value, '')";

  /// Exactly one set of rows per run: no run key twice, no (run, step, split, name, item,
  /// level, option value) twice, every row from the run's current attempt.
  void expect_no_duplicates(const std::string& db) {
    EXPECT_EQ(query(db, "SELECT count(*) - count(DISTINCT run_key) AS d FROM runs"), "d\n0\n");
    EXPECT_EQ(query(db,
                    "SELECT count(*) - count(DISTINCT run_id || '/' || step || '/' || split "
                    "|| '/' || name || '/' || " +
                        kSeries + ") AS d FROM metrics"),
              "d\n0\n");
    EXPECT_EQ(query(db,
                    "SELECT count(*) - count(DISTINCT run_id || '/' || step || '/' || split "
                    "|| '/' || layer || '/' || name || '/' || " +
                        kSeries + ") AS d FROM layer_stats"),
              "d\n0\n");
    EXPECT_EQ(query(db,
                    "SELECT count(*) AS n FROM metrics m JOIN runs r ON r.id = m.run_id "
                    "WHERE m.attempt != r.attempts"),
              "n\n0\n");
  }

  moe::testing::TempDir tmp_;
};

TEST_F(SweepRun, FailingTrialIsRecordedAndTheSweepGoesOn) {
  const auto file = sweep(3, true);
  EXPECT_EQ(moe("sweep run " + file + " --db " + path("r.sqlite")), 1)
      << "a failed trial -> exit 1";
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY status"),
            "status,n\ncompleted,4\nfailed,2\n");
  const auto err =
      query(path("r.sqlite"), "SELECT DISTINCT error FROM runs WHERE status = 'failed'");
  EXPECT_NE(err.find("train.init_from: cannot read '" + not_a_model() + "'"), std::string::npos)
      << err;
  // Rerun: nothing to do without --retry-failed; failures are still reported.
  EXPECT_EQ(moe("sweep run " + file + " --db " + path("r.sqlite")), 1);
  EXPECT_EQ(query(path("r.sqlite"), "SELECT sum(attempts) AS a FROM runs"), "a\n6\n");
  EXPECT_EQ(moe("sweep run " + file + " --db " + path("r.sqlite") + " --retry-failed"), 1);
  EXPECT_EQ(query(path("r.sqlite"), "SELECT sum(attempts) AS a FROM runs"), "a\n8\n");
  // Per-step metrics, final metrics, layer stats and run metadata are all there.
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT count(*) > 0 AS ok FROM metrics m JOIN runs r ON r.id = m.run_id "
                  "WHERE r.method = 'switch' AND m.split = 'train' AND m.name = 'loss'"),
            "ok\n1\n");
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT count(*) AS n FROM final WHERE status = 'completed' AND test_accuracy IS "
                  "NOT NULL "
                  "AND active_params > 0 AND flops_per_token > 0"),
            "n\n4\n");
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT count(DISTINCT run_id) AS n FROM layer_stats WHERE split = 'test'"),
            "n\n2\n");
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT count(*) AS n FROM runs WHERE host != '' AND libtorch LIKE 'LibTorch%' "
                  "AND code_version != '' AND wall_seconds > 0 AND status = 'completed'"),
            "n\n4\n");
  EXPECT_EQ(moe("sweep status " + file + " --db " + path("r.sqlite")), 0);
  // The routing diagnostics are stored per layer, and moe plot routing draws them.
  EXPECT_EQ(query(path("r.sqlite"),
                  "SELECT count(DISTINCT name) AS n FROM layer_stats WHERE split = 'valid' AND "
                  "name IN ('dead_experts', 'load_cv', 'load_max_over_mean', 'load_top20_share', "
                  "'saturation', 'experts_p50', 'experts_p90', 'experts_p99')"),
            "n\n8\n");
  ASSERT_EQ(moe("plot routing --db " + path("r.sqlite") + " --out " + path("plots")), 0);
  EXPECT_TRUE(std::filesystem::exists(path("plots") + "/routing.png"));
}

TEST_F(SweepRun, KillDashNineThenRerunCompletesOnlyTheMissingTrials) {
  const auto file = sweep(150, false);
  const std::string db = path("k.sqlite");
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl(MOE_BINARY, MOE_BINARY, "sweep", "run", file.c_str(), "--db", db.c_str(), nullptr);
    _exit(127);
  }
  // Wait until at least one trial completed, then kill the sweep process outright.
  bool some = false;
  for (int i = 0; i < 600 && !some; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!std::filesystem::exists(db)) continue;
    try {
      some = query(db, "SELECT count(*) AS n FROM runs WHERE status = 'completed'") != "n\n0\n";
    } catch (...) {
    }
  }
  ASSERT_TRUE(some);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the orphaned worker stops
  const auto before =
      query(db, "SELECT run_key FROM runs WHERE status = 'completed' ORDER BY run_key");
  ASSERT_NE(before, "run_key\n");
  EXPECT_NE(query(db, "SELECT count(*) AS n FROM runs WHERE status = 'completed'"), "n\n4\n")
      << "the kill came too late to test resuming";
  EXPECT_EQ(moe("sweep run " + file + " --db " + db), 0);
  EXPECT_EQ(query(db, "SELECT count(*) AS n, sum(status = 'completed') AS c FROM runs"),
            "n,c\n4,4\n");
  // Runs completed before the kill were not redone.
  EXPECT_EQ(query(
                db,
                "SELECT run_key FROM runs WHERE status = 'completed' AND attempts = 1 "
                "AND run_key IN (" +
                    [&] {
                      std::string keys, line;
                      std::istringstream in(before);
                      std::getline(in, line);
                      while (std::getline(in, line))
                        keys += (keys.empty() ? "'" : ",'") + line + "'";
                      return keys;
                    }() +
                    ") ORDER BY run_key"),
            before);
}

TEST_F(SweepRun, TwoRunnersOnOneDatabaseRunEachTrialOnce) {
  const auto file = sweep(20, false);
  const std::string db = path("two.sqlite");
  const pid_t a = spawn_runner(file, db, "--workers 1");
  const pid_t b = spawn_runner(file, db, "--workers 1");
  int sa = 0, sb = 0;
  waitpid(a, &sa, 0);
  waitpid(b, &sb, 0);
  std::ifstream in(path("runner.log"));
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << log;
  EXPECT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << log;
  EXPECT_EQ(query(db,
                  "SELECT count(*) AS n, sum(status = 'completed') AS c, max(attempts) AS a "
                  "FROM runs"),
            "n,c,a\n4,4,1\n");
  expect_no_duplicates(db);
  EXPECT_NE(log.find("by other processes"), std::string::npos) << log;
}

// SIGKILL the runner at several points (MOE_KILL_SOAK=N for N points; 3 by default), resuming
// after each; then SIGKILL a worker. Nothing is run twice once completed, nothing is lost.
TEST_F(SweepRun, KillNineAnywhereLosesNothing) {
  const char* soak = std::getenv("MOE_KILL_SOAK");
  const int kills = soak ? std::max(1, std::atoi(soak)) : 3;
  const auto file = sweep(60, false);
  int round = 0, points = 0;
  std::string db = path("kill0.sqlite");
  std::mt19937 rng(42);
  auto completed = [&] {
    std::map<std::string, std::string> out;  // run key -> attempts, of completed runs
    if (!std::filesystem::exists(db)) return out;
    std::string rows;
    try {
      rows = query(db, "SELECT run_key, attempts FROM runs WHERE status = 'completed'");
    } catch (const std::exception& e) {
      // Killed between creating the file and committing its schema: nothing written yet.
      if (std::string(e.what()).find("schema version 0") == std::string::npos) throw;
      return out;
    }
    std::istringstream in(rows);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) out[line.substr(0, line.find(','))] = line;
    return out;
  };
  while (points < kills) {
    const auto before = completed();
    const pid_t pid = spawn_runner(file, db);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<>(100, 2500)(rng)));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    ++points;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the orphaned worker stops
    for (const auto& [key, row] : before) EXPECT_EQ(completed()[key], row) << "redone: " << key;
    if (completed().size() == 4 || points == kills) {  // finish this database, check it
      ASSERT_EQ(moe("sweep run " + file + " --db " + db), 0);
      for (const auto& [key, row] : before) EXPECT_EQ(completed()[key], row) << "redone: " << key;
      EXPECT_EQ(completed().size(), 4u);
      expect_no_duplicates(db);
      db = path("kill" + std::to_string(++round) + ".sqlite");
    }
  }
  // A worker killed outright is recorded as failed with the signal; --retry-failed redoes it.
  const std::string wdb = path("worker.sqlite");
  const pid_t pid = spawn_runner(file, wdb);
  bool killed = false;
  for (int i = 0; i < 400 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    if (!std::filesystem::exists(wdb)) continue;
    try {
      const auto q = query(wdb, "SELECT pid FROM runs WHERE status = 'running' AND pid != " +
                                    std::to_string(pid) + " LIMIT 1");
      if (q.size() > 4) killed = kill(std::stoi(q.substr(4)), SIGKILL) == 0;
    } catch (...) {
    }
  }
  ASSERT_TRUE(killed);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_EQ(query(wdb, "SELECT error FROM runs WHERE status = 'failed'"),
            "error\nworker killed by signal 9\n");
  EXPECT_EQ(moe("sweep run " + file + " --db " + wdb + " --retry-failed"), 0);
  EXPECT_EQ(query(wdb, "SELECT count(*) AS n, sum(status = 'completed') AS c FROM runs"),
            "n,c\n4,4\n");
  expect_no_duplicates(wdb);
  std::cerr
      << "kill test: " << points << " runner kill point(s) over " << round
      << " database(s) of 4 trials, 1 worker kill; duplicates found: 0 unless reported above\n";
}

// What a cluster does to a job: SIGTERM to the whole process group (runner and workers) at
// random points, or SIGKILL to all of them; each rerun continues the interrupted trials
// from their checkpoints (at the signal, or the last periodic one after SIGKILL). The
// final database equals an uninterrupted run's in every row; fewer steps are trained than
// restarting from zero would.
TEST_F(SweepRun, SignalledOrKilledTrialsContinueFromCheckpointsAndEqualAnUninterruptedSweep) {
  const auto file = sweep(600, false, ", eval_every = 200, checkpoint_every = 50");
  const std::string straight = path("straight.sqlite");
  ASSERT_EQ(moe("sweep run " + file + " --db " + straight), 0);
  EXPECT_FALSE(std::filesystem::exists(straight + "-checkpoints/") &&
               !std::filesystem::is_empty(straight + "-checkpoints/"))
      << "completed trials' checkpoints are removed";
  std::mt19937 rng(7);
  for (const int sig : {SIGTERM, SIGKILL}) {
    const std::string db = path(sig == SIGTERM ? "term.sqlite" : "kill.sqlite");
    int rounds = 0, resumed = 0;
    for (; rounds < 5; ++rounds) {
      const pid_t pid = spawn_runner(file, db);
      // Signal at a random moment after a worker wrote a checkpoint in this round (whatever
      // the machine's load), or after the runner exited.
      const auto started = std::filesystem::file_time_type::clock::now();
      auto checkpointed = [&] {
        std::error_code ec;
        for (const auto& f : std::filesystem::directory_iterator(db + "-checkpoints", ec)) {
          if (f.last_write_time(ec) > started) return true;
        }
        return false;
      };
      for (int i = 0; i < 600 && !checkpointed() && waitpid(pid, nullptr, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<>(0, 600)(rng)));
      kill(-pid, sig);  // the process group: runner and workers, as Slurm signals a job
      int st = 0;
      waitpid(pid, &st, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      // (a signal before the runner created the database, or its schema, leaves nothing)
      bool all_done = false;
      try {
        all_done =
            std::filesystem::exists(db) &&
            query(db, "SELECT count(*) AS n FROM runs WHERE status = 'completed'") == "n\n4\n";
      } catch (const std::exception& e) {
        if (std::string(e.what()).find("schema version 0") == std::string::npos) throw;
      }
      if (all_done) break;
    }
    ASSERT_EQ(moe("sweep run " + file + " --db " + db), 0) << "finishes what is left";
    resumed =
        std::stoi(query(db, "SELECT count(*) AS n FROM metrics WHERE split = 'resume'").substr(2));
    EXPECT_GT(resumed, 0) << "no trial continued from a checkpoint in " << rounds << " rounds";
    if (sig == SIGTERM) {  // the signal's checkpoint is the step it arrived at
      EXPECT_EQ(query(db,
                      "SELECT count(*) AS n FROM metrics WHERE split = 'resume' AND "
                      "CAST(value AS INTEGER) % 50 != 0") != "n\n0\n",
                true)
          << "SIGTERM checkpoints where it lands, not only at the periodic steps";
    }
    expect_same_lines(deterministic_rows(db), deterministic_rows(straight), db);
    expect_no_duplicates(db);
    const auto saved = query(db, "SELECT sum(value) AS s FROM metrics WHERE split = 'resume'");
    std::cerr << (sig == SIGTERM ? "SIGTERM" : "SIGKILL") << ": " << rounds << " signal(s), "
              << resumed << " continuation(s), steps not retrained: " << saved.substr(2);
    EXPECT_TRUE(!std::filesystem::exists(db + "-checkpoints") ||
                std::filesystem::is_empty(db + "-checkpoints"));
  }
}

// CPU numbers depend on the thread count. A config's own `threads` is used whatever the
// runner's --workers (the runner once replaced it with its share of the cores, so a trial's
// numbers depended on the machine's load); with `threads = 0` a continued trial trains with
// its checkpoint's count, so a continuation under a runner that would give it fewer threads
// still equals the uninterrupted run (CI once failed on a 1-ULP difference from that).
TEST_F(SweepRun, ATrialsThreadsAreItsConfigsOrItsCheckpointsNotTheRunnersShare) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) < 2) {
    GTEST_SKIP() << "needs 2 usable cores (a runner's share of 1 core is 1 thread)";
  }
  auto edit = [](std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
  };
  auto text = [](const std::string& f) {
    std::ifstream in(f);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  // threads = 1 under --workers 1 (a share of 2+ threads) and --workers 2.
  const std::string own = text(sweep(60, false));
  std::ofstream(path("own.toml")) << own;
  ASSERT_EQ(moe("sweep run " + path("own.toml") + " --workers 1 --db " + path("w1.sqlite")), 0);
  ASSERT_EQ(moe("sweep run " + path("own.toml") + " --workers 2 --db " + path("w2.sqlite")), 0);
  expect_same_lines(deterministic_rows(path("w2.sqlite")), deterministic_rows(path("w1.sqlite")),
                    "threads = 1 under --workers 2 vs 1");
  // threads = 0, one trial: started by a 1-worker runner, stopped by SIGTERM after its first
  // checkpoint, continued by a 2-worker runner.
  std::string one = edit(
      edit(edit(text(sweep(1500, false, ", checkpoint_every = 50")), "threads = 1", "threads = 0"),
           "seeds = [0, 1]", "seeds = [0]"),
      "method = [\"dense\", \"switch\"]", "method = [\"switch\"]");
  std::ofstream(path("one.toml")) << one;
  const std::string straight = path("straight.sqlite"), db = path("continued.sqlite");
  ASSERT_EQ(moe("sweep run " + path("one.toml") + " --workers 1 --db " + straight), 0);
  const pid_t pid = spawn_runner(path("one.toml"), db, "--workers 1");
  for (int i = 0; i < 1200 && waitpid(pid, nullptr, WNOHANG) == 0; ++i) {
    std::error_code ec;
    if (!std::filesystem::is_empty(db + "-checkpoints", ec) && !ec) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  kill(-pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  ASSERT_EQ(moe("sweep run " + path("one.toml") + " --workers 2 --db " + db), 0);
  const auto resumed = query(db, "SELECT count(*) AS n FROM metrics WHERE split = 'resume'");
  if (resumed == "n\n0\n") GTEST_SKIP() << "the trial finished before the signal";
  expect_same_lines(deterministic_rows(db), deterministic_rows(straight),
                    "threads = 0, continued under --workers 2");
}

TEST_F(SweepRun, ShardsWriteTheirOwnDatabasesThenMerge) {
  const auto file = sweep(3, false);
  std::thread a(
      [&] { EXPECT_EQ(moe("sweep run " + file + " --shard 0/2 --db " + path("s0.sqlite")), 0); });
  std::thread b([&] {
    const std::string cmd = std::string(MOE_BINARY) + " sweep run " + file + " --shard 1/2 --db " +
                            path("s1.sqlite") + " > " + path("log1.txt") + " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  });
  a.join();
  b.join();
  EXPECT_EQ(query(path("s0.sqlite"), "SELECT count(*) AS n FROM runs"), "n\n2\n");
  EXPECT_EQ(moe("merge " + path("all.sqlite") + " " + path("s0.sqlite") + " " + path("s1.sqlite")),
            0);
  EXPECT_EQ(query(path("all.sqlite"),
                  "SELECT count(*) AS n, count(DISTINCT run_key) AS k FROM runs WHERE status = "
                  "'completed'"),
            "n,k\n4,4\n");
  EXPECT_EQ(query(path("all.sqlite"), "SELECT method, n FROM by_method ORDER BY method"),
            "method,n\ndense,2\nswitch,2\n");
  EXPECT_EQ(moe("sweep run " + file + " --shard 2/2 --db " + path("x.sqlite")), 1);
}

// Token files as llm.c's and nanoGPT's scripts write them, and text through `moe tokenize`,
// train through a sweep end to end (plan, run, evaluation by difficulty, the curriculum's pool).
TEST_F(SweepRun, TokenFilesFromLlmcNanoGptAndMoeTokenizeTrainThroughASweep) {
  std::mt19937 rng(3);
  auto tokens = [&](int64_t n) {
    std::vector<uint16_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<uint16_t>(rng() % 64);
    return t;
  };
  auto write_llmc = [&](const std::string& file, const std::vector<uint16_t>& t) {
    std::vector<int32_t> header(256, 0);
    header[0] = 20240520;  // llm.c's write_datafile: magic, version 1 (uint16), count
    header[1] = 1;
    header[2] = static_cast<int32_t>(t.size());
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), 1024);
    out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(2 * t.size()));
  };
  auto write_raw = [&](const std::string& file, const std::vector<uint16_t>& t) {
    std::ofstream(file, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(2 * t.size()));
  };
  write_llmc(path("llmc_train_000001.bin"), tokens(3000));
  write_llmc(path("llmc_train_000002.bin"), tokens(2000));
  write_llmc(path("llmc_val_000000.bin"), tokens(600));
  std::filesystem::create_directories(path("nano"));
  write_raw(path("nano/train.bin"), tokens(4000));
  write_raw(path("nano/val.bin"), tokens(600));
  {
    std::ofstream text(path("text.txt"));
    for (int line = 0; line < 300; ++line) text << "line " << line << " of some text, caf\u00e9\n";
  }
  ASSERT_EQ(moe("tokenize --tokenizer byte --out " + path("bytes") + " " + path("text.txt")), 0);
  std::ofstream(path("t.toml"))
      << "name = \"tok\"\nseeds = [0]\n[base]\ndevice = \"cpu\"\nthreads = 1\n"
      << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 8 }\n"
      << "moe = { num_experts = 2, router = { name = \"top_k\", k = 1 }, "
         "experts = { name = \"ffn\", hidden = 8 } }\n"
      << "train = { steps = 6, batch_size = 4, warmup = 1, log_every = 2, eval_every = 3, "
         "eval_batches = 2 }\n"
      << "[presets.llmc]\ntask = { name = \"tokens\", train = [\"" << path("llmc_train_000001.bin")
      << "\", \"" << path("llmc_train_000002.bin") << "\"], valid = \""
      << path("llmc_val_000000.bin") << "\", vocab_size = 64, seq_len = 16 }\n"
      << "[presets.nanogpt]\ntask = { name = \"tokens\", dir = \"" << path("nano")
      << "\", vocab_size = 64, seq_len = 16 }\n\"train.sampling\" = \"curriculum\"\n"
      << "[presets.text]\ntask = { name = \"tokens\", dir = \"" << path("bytes")
      << "\", seq_len = 16 }\n"
      << "[grid]\nmethod = [\"llmc\", \"nanogpt\", \"text\"]\n";
  ASSERT_EQ(moe("sweep run " + path("t.toml") + " --db " + path("t.sqlite")), 0)
      << std::ifstream(path("log.txt")).rdbuf();
  EXPECT_EQ(query(path("t.sqlite"),
                  "SELECT method, status, test_loss > 0 AND test_loss < 10 AS ok FROM final "
                  "ORDER BY method"),
            "method,status,ok\nllmc,completed,1\nnanogpt,completed,1\ntext,completed,1\n");
  // Accuracy per frequency-rank level was evaluated (64 ids: one level; 256 bytes: two).
  EXPECT_EQ(query(path("t.sqlite"),
                  "SELECT r.method, count(*) AS levels FROM metrics m JOIN runs r ON r.id = "
                  "m.run_id WHERE m.split = 'test' AND m.name = 'level_accuracy' GROUP BY 1 "
                  "ORDER BY 1"),
            "method,levels\nllmc,1\nnanogpt,1\ntext,2\n");
}

TEST_F(SweepRun, EvaluateReevaluatesSavedModelsAtEachThreshold) {
  std::ofstream(path("e.toml"))
      << "name = \"ev\"\nseeds = [0]\n[evaluate]\noption = \"threshold\"\nvalues = [0.1, 0.9]\n"
      << "[base]\ndevice = \"cpu\"\nthreads = 1\n"
      << "task = { name = \"mod_sum\", seq_len = 8, modulus = 3, max_depth = 2, eval_sequences = 8 "
         "}\n"
      << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 8 }\n"
      << "moe = { num_experts = 4, experts = { name = \"ffn\", hidden = 8 } }\n"
      << "train = { steps = 3, batch_size = 4, warmup = 1, log_every = 1, eval_batch_size = 8 }\n"
      << "[presets.dense]\n\"model.moe_every\" = 0\n"
      << "[presets.top_p]\n\"moe.router\" = { name = \"top_p\", threshold = 0.3 }\n"
      << "[grid]\nmethod = [\"dense\", \"top_p\"]\n";
  const auto db = path("e.sqlite");
  ASSERT_EQ(moe("sweep run " + path("e.toml") + " --db " + db), 0);
  EXPECT_TRUE(std::filesystem::exists(path("models")));
  // Split 'reeval', the option and its value in columns (no name or split is parsed).
  const std::string per_split =
      "SELECT r.method, m.option, m.option_value, m.value AS k FROM metrics m JOIN runs r ON "
      "r.id = m.run_id WHERE m.split = 'reeval' AND m.name = 'mean_experts' ORDER BY 1, 3";
  const auto first = query(db, per_split);
  EXPECT_NE(first.find("top_p,threshold,0.1,"), std::string::npos) << first;
  EXPECT_NE(first.find("top_p,threshold,0.9,"), std::string::npos) << first;
  EXPECT_EQ(first.find("dense"), std::string::npos) << "dense has no router to set";
  EXPECT_EQ(query(db,
                  "SELECT count(*) AS n FROM metrics WHERE name = 'option_value' OR split "
                  "GLOB '*@*' OR name GLOB '*/[0-9]*'"),
            "n\n0\n");
  // More experts at 0.9 than at 0.1, from the same weights.
  EXPECT_EQ(query(db,
                  "SELECT (SELECT value FROM metrics WHERE split = 'reeval' AND option_value = 0.9 "
                  "AND name = 'mean_experts') > (SELECT value FROM metrics WHERE split = "
                  "'reeval' AND option_value = 0.1 AND name = 'mean_experts') AS more"),
            "more\n1\n");
  EXPECT_EQ(query(db, "SELECT option, value FROM reevals ORDER BY value"),
            "option,value\nthreshold,0.1\nthreshold,0.9\n");
  // Already stored values are skipped; new ones are added.
  ASSERT_EQ(moe("sweep eval " + path("e.toml") + " --db " + db), 0);
  EXPECT_EQ(query(db, per_split), first);
  ASSERT_EQ(moe("sweep eval " + path("e.toml") + " --db " + db + " --values 0.5"), 0);
  EXPECT_EQ(query(db,
                  "SELECT count(DISTINCT option_value) AS n FROM metrics WHERE split = "
                  "'reeval'"),
            "n\n3\n");
  EXPECT_EQ(moe("sweep eval " + path("e.toml") + " --db " + db + " --values 0.5,x"), 1);
  ASSERT_EQ(moe("plot reevals --db " + db + " --out " + path("plots")), 0);
  EXPECT_TRUE(std::filesystem::exists(path("plots/reevals.png")));
  EXPECT_TRUE(std::filesystem::exists(path("plots/reevals.svg")));
}

}  // namespace
}  // namespace moe
