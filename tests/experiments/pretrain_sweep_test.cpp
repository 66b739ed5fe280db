// End-to-end: a sweep with [pretrain] trains the backbone once and fine-tunes from it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "experiments/sweep_spec.h"
#include "results/report.h"
#include "tests/test_util.h"

namespace moe {
namespace {

class PretrainSweep : public ::testing::Test {
 protected:
  std::string path(const std::string& n) { return tmp_.file(n); }

  std::string sweep() {
    std::ofstream(path("s.toml"))
        << "name = \"ft\"\nseeds = [0, 1]\n[base]\ndevice = \"cpu\"\nthreads = 1\n"
        << "task = { name = \"mod_sum\", seq_len = 8, modulus = 3, max_depth = 2, eval_sequences = "
           "8 }\n"
        << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 8, moe_every = 0 }\n"
        << "train = { steps = 3, batch_size = 4, warmup = 1, log_every = 1, eval_batch_size = 8 }\n"
        << "[pretrain]\n\"train.steps\" = 4\n"
        << "[presets.full]\n\"train.lr\" = 1e-3\n"
        << "[presets.head]\n\"train.trainable\" = [\"head.*\"]\n"
        << "[grid]\nmethod = [\"full\", \"head\"]\n";
    return path("s.toml");
  }

  int moe(const std::string& args) {
    const std::string cmd =
        std::string(MOE_BINARY) + " " + args + " > " + path("log.txt") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  std::string query(const std::string& sql) {
    std::ostringstream out;
    results::run_query(path("r.sqlite"), sql, results::QueryFormat::kCsv, out);
    return out.str();
  }

  moe::testing::TempDir tmp_;
};

TEST_F(PretrainSweep, PretrainsOnceAndFineTunesEveryTrialFromIt) {
  const auto plan = load_sweep(sweep());
  ASSERT_EQ(plan.trials.size(), 5u);
  const auto& pre = plan.trials.front();
  EXPECT_TRUE(pre.pretrain);
  EXPECT_EQ(pre.config["train"]["steps"], 4);
  for (size_t i = 1; i < plan.trials.size(); ++i) {
    EXPECT_EQ(plan.trials[i].depends_on, pre.run_key);
    EXPECT_EQ(plan.trials[i].config["train"]["init_from"], "run:" + pre.run_key);
  }
  ASSERT_EQ(moe("sweep run " + sweep() + " --db " + path("r.sqlite") + " -j 2"), 0)
      << std::ifstream(path("log.txt")).rdbuf();
  EXPECT_TRUE(std::filesystem::exists(path("models/" + pre.run_key + ".pt")));
  EXPECT_EQ(query("SELECT method, count(*) AS n, min(status) AS s FROM runs GROUP BY method ORDER "
                  "BY method"),
            "method,n,s\nfull,2,completed\nhead,2,completed\npretrain,1,completed\n");
  // The pretraining run finished before any fine-tuning run started.
  EXPECT_EQ(query("SELECT count(*) AS n FROM runs f, runs p WHERE p.method = 'pretrain' "
                  "AND f.method != 'pretrain' AND f.started_at < p.finished_at"),
            "n\n0\n");
  EXPECT_EQ(query("SELECT r.method, min(m.value) = 100 AS all_train FROM metrics m JOIN runs r "
                  "ON r.id = m.run_id WHERE m.split = 'final' AND m.name = 'trainable_percent' "
                  "GROUP BY r.method ORDER BY r.method"),
            "method,all_train\nfull,1\nhead,0\npretrain,1\n");
  // Rerunning trains nothing again, the pretraining included.
  EXPECT_EQ(moe("sweep run " + sweep() + " --db " + path("r.sqlite")), 0);
  EXPECT_EQ(query("SELECT sum(attempts) AS a FROM runs"), "a\n5\n");
}

TEST_F(PretrainSweep, UpcyclesTheDenseModelIntoEveryExpert) {
  std::ofstream(path("u.toml"))
      << "name = \"up\"\nseeds = [0]\n[base]\ndevice = \"cpu\"\nthreads = 1\n"
      << "task = { name = \"mod_sum\", seq_len = 8, modulus = 3, max_depth = 2, eval_sequences = "
         "8 }\n"
      << "model = { d_model = 8, layers = 1, heads = 2, ffn_hidden = 8, moe_every = 0 }\n"
      << "train = { steps = 3, batch_size = 4, warmup = 1, log_every = 1, eval_batch_size = 8 }\n"
      << "[pretrain]\n\"train.steps\" = 4\n"
      << "[presets.upcycled]\n\"model.moe_every\" = 1\n\"moe.num_experts\" = 4\n"
      << "\"moe.experts\" = { name = \"ffn\", hidden = 8 }\n\"train.upcycle_from\" = \"pretrain\"\n"
      << "[presets.continued]\n\"train.lr\" = 1e-3\n"
      << "[grid]\nmethod = [\"upcycled\", \"continued\"]\n";
  const auto plan = load_sweep(path("u.toml"));
  ASSERT_EQ(plan.trials.size(), 3u);
  const auto& pre = plan.trials.front();
  const auto& up = plan.trials[1].config["train"];
  EXPECT_EQ(up["upcycle_from"], "run:" + pre.run_key);
  EXPECT_FALSE(up.contains("init_from"));
  EXPECT_EQ(plan.trials[1].depends_on, pre.run_key);
  EXPECT_EQ(plan.trials[2].config["train"]["init_from"], "run:" + pre.run_key);
  ASSERT_EQ(moe("sweep run " + path("u.toml") + " --db " + path("r.sqlite")), 0)
      << std::ifstream(path("log.txt")).rdbuf();
  EXPECT_EQ(query("SELECT method, status FROM runs ORDER BY method"),
            "method,status\ncontinued,completed\npretrain,completed\nupcycled,completed\n");
}

}  // namespace
}  // namespace moe
