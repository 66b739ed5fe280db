#include "experiments/sweep_spec.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "core/config_error.h"
#include "core/train/device.h"
#include "core/train/trainer.h"
#include "tests/test_util.h"

namespace moe {
namespace {

using moe::testing::expect_error;

/// One directory of sweep files per test process, removed when the process exits.
struct SweepDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("moe_sweeps_" + std::to_string(::getpid()));
  SweepDir() { std::filesystem::create_directories(path); }
  ~SweepDir() { std::filesystem::remove_all(path); }
};

std::string write_sweep(const std::string& name, const std::string& text) {
  static SweepDir dir;
  auto path = (dir.path / name).string();
  std::ofstream(path) << text;
  return path;
}

const char* kSweep = R"(
name = "t"
seeds = [0, 1]
[base]
task = { name = "mod_sum", seq_len = 12 }
model = { d_model = 16, layers = 1, heads = 2 }
"train.steps" = 5
[presets.dense]
"model.moe_every" = 0
[presets.switch]
"moe.router" = { name = "top_k", k = 1 }
[grid]
method = ["dense", "switch"]
"moe.num_experts" = [2, 4]
[[exclude]]
method = "dense"
"moe.num_experts" = 4
)";

TEST(SweepSpec, ExpandsGridPresetsSeedsAndExcludes) {
  auto plan = load_sweep(write_sweep("a.toml", kSweep));
  EXPECT_EQ(plan.name, "t");
  // (dense, 2), (switch, 2), (switch, 4) x 2 seeds; (dense, 4) excluded.
  ASSERT_EQ(plan.trials.size(), 6u);
  EXPECT_EQ(plan.trials[0].method, "dense moe.num_experts=2");
  EXPECT_EQ(plan.trials[0].config["model"]["moe_every"], 0);
  EXPECT_EQ(plan.trials[0].config["train"]["steps"], 5);
  EXPECT_EQ(plan.trials[1].seed, 1);
  EXPECT_EQ(plan.trials[4].config["moe"]["num_experts"], 4);
  EXPECT_EQ(plan.trials[4].config["moe"]["router"]["k"], 1);
  EXPECT_EQ(plan.trials[4].config["seed"], 0);
}

TEST(SweepSpec, RunKeysAreStableUnderKeyOrderAndDifferOnValues) {
  auto a = load_sweep(write_sweep("a.toml", kSweep));
  std::string reordered = kSweep;
  reordered.replace(reordered.find("model = { d_model = 16, layers = 1, heads = 2 }"),
                    std::string("model = { d_model = 16, layers = 1, heads = 2 }").size(),
                    "model = { heads = 2, layers = 1, d_model = 16 }");
  auto b = load_sweep(write_sweep("b.toml", reordered));
  ASSERT_EQ(a.trials.size(), b.trials.size());
  for (size_t i = 0; i < a.trials.size(); ++i) EXPECT_EQ(a.trials[i].run_key, b.trials[i].run_key);
  std::string changed = kSweep;
  changed.replace(changed.find("\"train.steps\" = 5"), 17, "\"train.steps\" = 6");
  auto c = load_sweep(write_sweep("c.toml", changed));
  for (size_t i = 0; i < a.trials.size(); ++i) EXPECT_NE(a.trials[i].run_key, c.trials[i].run_key);
  std::set<std::string> keys;
  for (const auto& t : a.trials) keys.insert(t.run_key);
  EXPECT_EQ(keys.size(), a.trials.size());
  EXPECT_EQ(stable_hash("a"), "af63dc4c8601ec8c");  // FNV-1a 64 test vector
}

TEST(SweepSpec, ZipAxesMoveTogether) {
  auto plan = load_sweep(write_sweep("z.toml", R"(
name = "z"
seeds = [0]
task = "mod_sum"
[zip]
"train.lr" = [1e-3, 2e-3]
"train.warmup" = [10, 20]
)"));
  ASSERT_EQ(plan.trials.size(), 2u);
  EXPECT_EQ(plan.trials[1].config["train"]["warmup"], 20);
  EXPECT_DOUBLE_EQ(plan.trials[1].config["train"]["lr"].get<double>(), 2e-3);
}

TEST(SweepSpec, BadFilesNameFileKeyAndChoices) {
  expect_error([] { load_sweep(write_sweep("u.toml", "name = \"x\"\nseeds = [0]\nseedz = 1\n")); },
               "u.toml:3: unknown key 'seedz'; known: [base, base_config");
  expect_error([] { load_sweep(write_sweep("s.toml", "name = \"x\"\nseeds = \"0\"\n")); },
               "s.toml:2: key 'seeds' expected a non-empty array of integers");
  expect_error(
      [] {
        load_sweep(write_sweep(
            "e.toml",
            "name = \"x\"\nseeds = [0]\ntask = \"mod_sum\"\n[grid]\n\"train.lr\" = []\n"));
      },
      "grid axis 'train.lr' expected a non-empty array");
  expect_error(
      [] {
        load_sweep(write_sweep(
            "x.toml", std::string(kSweep) +
                          "[[exclude]]\nmethod = \"switch\"\n[[exclude]]\nmethod = \"dense\"\n"));
      },
      "the sweep expands to no trials");
  expect_error(
      [] {
        load_sweep(write_sweep("p.toml",
                               "name = \"x\"\nseeds = [0]\ntask = \"mod_sum\"\n[grid]\nmethod = "
                               "[\"gshard\"]\n[presets.dense]\n\"model.moe_every\" = 0\n"));
      },
      "grid axis 'method': unknown preset \"gshard\"; known: [dense]");
  expect_error(
      [] {
        load_sweep(write_sweep(
            "d.toml", "name = \"x\"\nseeds = [0]\n[presets.a]\nx = 1\n[presets.a]\ny = 2\n"));
      },
      "d.toml:5:");  // toml++: the table is defined twice
  expect_error(
      [] {
        load_sweep(write_sweep("r.toml",
                               "name = \"x\"\nseeds = [0]\ntask = "
                               "\"mod_sum\"\n[base]\n\"moe.router\" = { name = \"top_q\" }\n"));
      },
      // (up to where the test-only plugins of tests/plugin_fixtures/ sort in)
      "unknown router 'top_q'; known: [adaptive, expert_choice, inf_moe, remoe, ");
  expect_error(
      [] { load_sweep(write_sweep("t.toml", "name = \"x\"\nseeds = [0]\ntask = \"mod_summ\"\n")); },
      "unknown task 'mod_summ'; known: [brown_lm, brown_pos, facts, mod_sum, pointer_chase, ");
  expect_error(
      [] {
        load_sweep(write_sweep(
            "k.toml",
            "name = \"x\"\nseeds = [0]\ntask = \"mod_sum\"\n[base]\n\"train.stepz\" = 1\n"));
      },
      "section 'train': unknown parameter 'stepz'");
  expect_error(
      [] {
        load_sweep(write_sweep(
            "w.toml",
            "name = \"x\"\nseeds = [0]\ntask = \"mod_sum\"\n[base]\n\"train.steps\" = \"many\"\n"));
      },
      "parameter 'steps' expected an integer, got string 'many'");
}

TEST(SweepSpec, CheckedInSweepsPlan) {
  for (const char* name :
       {"quick.toml", "brown_pos_baselines.toml", "dynamic_moe.toml", "infinity_moe.toml",
        "lm_moe.toml", "hyper_moe.toml", "adaptive_gating.toml", "peft.toml"}) {
    EXPECT_NO_THROW(load_sweep(std::string(MOE_SOURCE_DIR) + "/experiments/sweeps/" + name))
        << name;
  }
}

// [tune] axes cross the grid like its axes, and the label keeps its parts apart.
TEST(SweepSpec, TuneAxesCrossTheGridAndLabelTheirPart) {
  const std::string head = std::string(kSweep).substr(0, std::string(kSweep).find("[[exclude]]"));
  auto plan = load_sweep(write_sweep(
      "tune.toml", head + "[tune]\nmetric = \"valid_accuracy\"\n\"train.lr\" = [1e-3, 3e-3]\n"));
  EXPECT_EQ(plan.tune_metric, "valid_accuracy");
  ASSERT_EQ(plan.trials.size(), 16u);  // 2 methods x 2 expert counts x 2 lr x 2 seeds
  const auto& t = plan.trials[2];
  EXPECT_EQ(t.method, "dense moe.num_experts=2 train.lr=0.003");
  EXPECT_EQ(t.preset, "dense");
  EXPECT_EQ(t.context, "moe.num_experts=2");
  EXPECT_EQ(t.tune, "train.lr=0.003");
  EXPECT_DOUBLE_EQ(t.config["train"]["lr"].get<double>(), 3e-3);
  EXPECT_EQ(
      load_sweep(write_sweep("tune2.toml", head + "[tune]\n\"train.lr\" = [1e-3]\n")).tune_metric,
      "valid_loss");
  expect_error(
      [&] {
        load_sweep(write_sweep("tb.toml",
                               head + "[tune]\nmetric = \"test_accuracy\"\n\"train.lr\" = [1]\n"));
      },
      "tb.toml:16: tune.metric expected the name of a validation metric");
  expect_error(
      [&] { load_sweep(write_sweep("te.toml", head + "[tune]\nmetric = \"valid_loss\"\n")); },
      "table 'tune' expected at least one axis");
  expect_error(
      [&] { load_sweep(write_sweep("tg.toml", head + "[tune]\n\"moe.num_experts\" = [8]\n")); },
      "axis 'moe.num_experts' is in both [grid] and [tune]");
  expect_error([&] { load_sweep(write_sweep("tm.toml", head + "[tune]\nmethod = [\"dense\"]\n")); },
               "methods are compared, not tuned");
}

// Every bad file is refused by load_sweep (what `moe sweep plan` and `moe sweep run` call
// first) with the file named once, the key or trial, and nothing expanded or run.
TEST(SweepSpec, BadFilesAreRefusedAtPlanTime) {
  const std::string head =
      "name = \"b\"\nseeds = [0]\n[base]\ntask = { name = \"mod_sum\", seq_len = 12 }\n"
      "model = { d_model = 16, layers = 1, heads = 2 }\n\"train.steps\" = 5\n";
  auto preset = [&](const std::string& keys) {
    return head + "[presets.m]\n" + keys + "\n[grid]\nmethod = [\"m\"]\n";
  };
  struct Case {
    std::string file, text, message;
  };
  std::string huge = head + "[grid]\n";
  for (int i = 0; i < 10; ++i) huge += "\"x" + std::to_string(i) + "\" = [0,1,2,3,4,5,6,7,8,9]\n";
  const std::vector<Case> cases = {
      {"plugin.toml", preset("\"moe.router\" = { name = \"top_q\" }"),
       "plugin.toml: trial 'm': unknown router 'top_q'; known: [adaptive, expert_choice, inf_moe, "
       "remoe, "},
      // mod_sum's model is causal: expert choice would see later tokens.
      {"ec.toml", preset("\"moe.router\" = { name = \"expert_choice\" }"),
       "ec.toml: trial 'm': router 'expert_choice': each expert picks its top-C tokens across "
       "the whole batch"},
      {"up.toml", head + "\"train.upcycle_from\" = \"pretrain\"\n",
       "up.toml: trial 'b': train.upcycle_from = \"pretrain\" needs a [pretrain] section"},
      {"gran.toml",
       head + "\"moe.experts\" = { name = \"ffn\", hidden = 30 }\n[grid]\n"
              "granularity = [1, 4]\n",
       "gran.toml: axis 'granularity': parameter 'moe.experts.hidden' expected a multiple of "
       "granularity 4, got 30"},
      // A grid key through a value: refused (it used to replace train.steps by a table).
      {"through.toml", head + "[grid]\n\"train.steps.x\" = [1, 2]\n",
       "through.toml: key 'train.steps.x': 'train.steps' is a value, not a table"},
      {"granp.toml", head + "\"moe.router\" = { name = \"top_p\" }\n[grid]\ngranularity = [2]\n",
       "granp.toml: axis 'granularity': router 'top_p' has no nominal experts per token to scale "
       "(routers with one: [expert_choice, remoe, "},
      {"shared.toml", head + "\"moe.shared_experts\" = -1\n",
       "shared.toml: trial 'b': section 'moe': parameter 'shared_experts' expected an integer in "
       "[0, 16777216], got -1"},
      {"k.toml", preset("\"moe.router\" = { name = \"top_k\", k = 9 }\n\"moe.num_experts\" = 4"),
       "k.toml: trial 'm': router 'top_k': parameter 'k' expected 1..num_experts (4), got 9"},
      {"p.toml", preset("\"moe.router\" = { name = \"top_p\", threshold = 1.5 }"),
       "p.toml: trial 'm': router 'top_p': parameter 'threshold' expected in [0, 1]"},
      {"hidden.toml", preset("\"moe.experts\" = { name = \"ffn\", hidden = -3 }"),
       "hidden.toml: trial 'm': experts 'ffn': parameter 'hidden' expected an integer in [1, "
       "16777216], got -3"},
      {"nan.toml", head + "[grid]\n\"train.lr\" = [nan]\n",
       "nan.toml:8: key 'grid.train.lr[0]' expected a finite number, got nan"},
      {"inf.toml", head + "\"train.warmup\" = -inf\n",
       "inf.toml:7: key 'base.train.warmup' expected a finite number, got -inf"},
      {"huge.toml", huge,
       "huge.toml: the sweep expands to 10000000000 trials (seeds: 1, grid.x0: 10, grid.x1: 10"},
      {"self.toml", "name = \"s\"\nseeds = [0]\nbase_config = \"self.toml\"\n",
       "self.toml:3: base_config names this sweep file itself"},
      {"sweep_base.toml", "name = \"s\"\nseeds = [0]\nbase_config = \"k.toml\"\n",
       "sweep_base.toml:3: base_config 'k.toml' is not a config file (it has key 'seeds'"},
      {"type.toml", head + "\"model.d_model\" = \"big\"\n",
       "type.toml: trial 'b': section 'model': parameter 'd_model' expected an integer, got "
       "string 'big'"},
      {"task.toml", head + "\"task.seq_lenn\" = 3\n",
       "task.toml: trial 'b': task 'mod_sum': unknown parameter 'seq_lenn'; known: [data_seed, "
       "eval_sequences, max_depth, modulus, seq_len, train_sequences]"},
      {"depth.toml", head + "\"task.max_depth\" = 99\n",
       "depth.toml: trial 'b': task 'mod_sum': parameter 'max_depth' expected 1..seq_len (12), "
       "got 99"},
      // A data-backed task's values are checked without its data (the directory is absent).
      {"brown.toml",
       "name = \"b\"\nseeds = [0]\n[base]\ndata_dir = \"/nonexistent\"\n"
       "task = { name = \"brown_lm\", vocab_size = 3 }\n",
       "brown.toml: trial 'b': task 'brown_lm': parameter 'vocab_size' expected an integer in [10, "
       "16777216], got 3"},
      {"zip.toml", head + "[zip]\n\"train.lr\" = [1e-3, 2e-3]\n\"train.warmup\" = [1]\n",
       "zip.toml:9: zip axis 'train.warmup' has 1 values, but 'train.lr' has 2"},
      {"empty.toml", head + "[grid]\n\"train.lr\" = []\n",
       "empty.toml:8: grid axis 'train.lr' expected a non-empty array"},
      {"heads.toml", head + "\"model.heads\" = 3\n",
       "heads.toml: trial 'b': section 'model': parameter 'heads' expected to divide d_model = "
       "16, got 3"},
      // What cannot fit is refused from the config's numbers, before anything is allocated.
      {"dmodel.toml", head + "\"model.d_model\" = 4000000\n\"model.heads\" = 1\n",
       "dmodel.toml: trial 'b': training needs at least 17.4 PB (1.09e+15 parameters"},
      // In range, too big together.
      {"experts.toml", preset("\"moe.num_experts\" = 16777216\n\"model.layers\" = 4096"),
       "experts.toml: trial 'm': training needs at least"},
      {"deep.toml", head + "\"model.layers\" = 65536\n\"model.d_model\" = 4096\n",
       "from model.d_model = 4096, model.layers = 65536"},
      {"bseq.toml", head + "\"loss.balance_seq\" = -1.0\n",
       "bseq.toml: trial 'b': section 'loss': parameter 'balance_seq' expected in [0, 1000000], "
       "got -1"},
      {"ecf.toml", head + "\"moe.eval_capacity_factor\" = -0.5\n",
       "ecf.toml: trial 'b': section 'moe': parameter 'eval_capacity_factor' expected in [0, "
       "16777216] and <= num_experts, got -0.5"},
      {"ecf8.toml", head + "\"moe.eval_capacity_factor\" = 8.5\n",
       "ecf8.toml: trial 'b': section 'moe': parameter 'eval_capacity_factor' expected in [0, "
       "num_experts] (0 = dropless; leave it out to use capacity_factor), got 8.5"},
      {"eccf.toml",
       preset("\"moe.router\" = { name = \"expert_choice\", capacity_factor = 1e308, "
              "allow_noncausal = true }"),
       "eccf.toml: trial 'm': router 'expert_choice': parameter 'capacity_factor' expected in (0, "
       "16777216] and <= moe.num_experts / k, got 1e+308"},
      {"cf.toml", head + "\"moe.capacity_factor\" = 1e308\n",
       "cf.toml: trial 'b': section 'moe': parameter 'capacity_factor' expected in [0, "
       "16777216] and <= num_experts, got 1e+308"},
      {"upc.toml", head + "\"train.upcycle_from\" = \"/nonexistent/dense.pt\"\n",
       "upc.toml: trial 'b': key 'train.upcycle_from': model file '/nonexistent/dense.pt' not "
       "found"},
      {"initdir.toml", head + "\"train.init_from\" = \"/tmp\"\n",
       "initdir.toml: trial 'b': key 'train.init_from': model file '/tmp' is a directory"},
      {"nobase.toml", "name = \"s\"\nseeds = [0]\nbase_config = \"missing.toml\"\n",
       "nobase.toml:3: base_config 'missing.toml': file not found"},
      {"warm.toml", head + "\"train.warmup\" = -3\n",
       "warm.toml: trial 'b': section 'train': parameter 'warmup' expected an integer in [0, "
       "1099511627776], got -3"},
      {"minlr.toml", head + "\"train.min_lr_ratio\" = 2.0\n",
       "parameter 'min_lr_ratio' expected in [0, 1], got 2"},
      {"drop.toml", head + "\"model.dropout\" = 1.5\n",
       "section 'model': parameter 'dropout' expected in [0, 1), got 1.5"},
      {"clip.toml", head + "\"train.clip\" = -1.0\n",
       "parameter 'clip' expected in [0, 1000000], got -1"},
      {"ckpt.toml", head + "\"train.checkpoint_minutes\" = -5.0\n",
       "parameter 'checkpoint_minutes' expected in [0, 1000000], got -5"},
      {"threads.toml", head + "threads = -2\n",
       "threads.toml: trial 'b': top level: parameter 'threads' expected an integer in [0, 4096], "
       "got -2"},
      {"lr.toml", head + "\"train.lr\" = 1e30\n",
       "lr.toml: trial 'b': section 'train': parameter 'lr' expected in (0, 10], got 1e+30"},
      {"layers.toml", head + "\"model.layers\" = 50000000\n",
       "layers.toml: trial 'b': section 'model': parameter 'layers' expected an integer in [1, "
       "65536], got 50000000"},
  };
  for (const auto& c : cases) {
    const auto path = write_sweep(c.file, c.text);
    try {
      load_sweep(path);
      ADD_FAILURE() << c.file << ": accepted";
    } catch (const ConfigError& e) {  // the configuration error type, naming the file
      const std::string what = e.what();
      EXPECT_NE(what.find(c.message), std::string::npos) << c.file << ": " << what;
      EXPECT_EQ(std::filesystem::path(e.file()).filename(), c.file) << what;
      // The file is named once.
      const auto first = what.find(c.file);
      EXPECT_EQ(what.find(c.file, first + 1), std::string::npos) << what;
    }
  }
  // --max-memory sets the bar for the memory estimate.
  expect_error([&] { load_sweep(write_sweep("mem.toml", head), kDefaultMaxTrials, 1e6); },
               "mem.toml: trial 'b': training needs at least");
  expect_error([&] { load_sweep(write_sweep("mem.toml", head), kDefaultMaxTrials, 1e6); },
               "over --max-memory (1.0 MB");
  EXPECT_EQ(load_sweep(write_sweep("mem.toml", head), kDefaultMaxTrials, 1e9).trials.size(), 1u);
  // HyperMoE's hypernetwork is in the estimate (its d x r heads: 3.4e10 parameters here);
  // an allocation that fails while the plan builds a model anyway (the limit raised past
  // the machine) is the plan's error naming file and trial, not an abort inside LibTorch.
  const std::string hyper = preset(
      "\"model.d_model\" = 1024\n\"moe.experts\" = { name = \"hyper\", hyper_hidden = 4096, "
      "bottleneck = 4096, inner = { name = \"ffn\", hidden = 16 } }");
  expect_error([&] { load_sweep(write_sweep("hyper.toml", hyper)); },
               "hyper.toml: trial 'm': training needs at least 551.3 GB (3.44e+10 parameters");
  // (d_model 2^20: its first attention matrix, 16 TB, fails to allocate on any machine.)
  configure_enforce_throws();  // as the moe binary does at start
  const std::string wide = head + "\"model.d_model\" = 1048576\n\"model.heads\" = 1\n";
  expect_error([&] { load_sweep(write_sweep("wide.toml", wide), kDefaultMaxTrials, 1e18); },
               "wide.toml: trial 'b': building the model failed: [enforce fail");
  // --max-trials lowers the bar.
  expect_error(
      [] {
        load_sweep(write_sweep("two.toml", "name = \"t\"\nseeds = [0, 1]\ntask = \"mod_sum\"\n"),
                   1);
      },
      "two.toml: the sweep expands to 2 trials (seeds: 2), above --max-trials 1");
}

TEST(SweepSpec, GranularitySplitsExpertsAtEqualActiveCompute) {
  auto plan = load_sweep(write_sweep("g.toml", R"(
name = "g"
seeds = [0]
[base]
task = { name = "mod_sum", seq_len = 12 }
model = { d_model = 16, layers = 1, heads = 2 }
"moe.num_experts" = 4
"moe.shared_experts" = 1
"moe.experts" = { name = "ffn", hidden = 32 }
"moe.router" = { name = "top_k", k = 2, score = "sigmoid" }
[presets.dense]
"model.moe_every" = 0
[presets.moe]
"model.moe_every" = 1
[grid]
method = ["dense", "moe"]
granularity = [1, 2, 4]
)"));
  // The dense trial is the same at every granularity: planned once.
  ASSERT_EQ(plan.trials.size(), 4u);
  EXPECT_EQ(plan.trials[0].method, "dense granularity=1");
  for (int i = 1; i <= 3; ++i) {
    const int64_t m = int64_t{1} << (i - 1);
    const auto& moe = plan.trials[i].config["moe"];
    EXPECT_EQ(plan.trials[i].method, "moe granularity=" + std::to_string(m));
    EXPECT_EQ(moe["num_experts"], 4 * m);
    EXPECT_EQ(moe["experts"]["hidden"], 32 / m);
    EXPECT_EQ(moe["router"]["k"], 2 * m);
    EXPECT_EQ(moe["router"]["score"], "sigmoid");
    EXPECT_EQ(moe["shared_experts"], m);
  }
  // A k = 1 base keeps its raw gate at every m (normalize defaults to k >= 2, and k
  // becomes m), and the measured active compute is the same at every m: the forward
  // FLOPs per token at the experts per token each model actually used.
  auto k1 = load_sweep(write_sweep("g1.toml", R"(
name = "g1"
seeds = [0]
[base]
task = { name = "mod_sum", seq_len = 12 }
model = { d_model = 16, layers = 2, heads = 2, moe_every = 1 }
"moe.num_experts" = 4
"moe.experts" = { name = "ffn", hidden = 32 }
"moe.router" = { name = "top_k", k = 1 }
[grid]
granularity = [1, 2, 4]
)"));
  ASSERT_EQ(k1.trials.size(), 3u);
  std::vector<double> flops;
  for (const auto& trial : k1.trials) {
    auto config = ExperimentConfig::from_json(trial.config, "g1.toml");
    config.device = "cpu";
    Trainer trainer(config);
    auto model = trainer.model();
    model->eval();
    torch::NoGradGuard g;
    auto out = model->forward(torch::randint(5, {8, 12}, torch::kLong));
    std::vector<double> experts;
    for (const auto& t : out.traces) experts.push_back(t.mean_experts());
    const int64_t m = trial.config["moe"]["router"]["k"].get<int64_t>();
    EXPECT_EQ(experts, std::vector<double>(2, static_cast<double>(m)));
    flops.push_back(model->flops_breakdown(experts, 12).ffn);
    // Raw gates: top-1's weight is the router probability, and at m >= 2 the m weights
    // still sum to less than 1 (renormalised gates would sum to 1).
    auto routing = model->moe_layers()[0]->router->forward(torch::randn({5, 16}));
    EXPECT_TRUE(routing.weights.sum(1).lt(1 - 1e-6).all().item<bool>()) << "m = " << m;
    if (m > 1) {
      EXPECT_EQ(trial.config["moe"]["router"]["normalize"], false);
    }
  }
  EXPECT_DOUBLE_EQ(flops[1], flops[0]);
  EXPECT_DOUBLE_EQ(flops[2], flops[0]);
  expect_error(
      [] {
        load_sweep(write_sweep("g0.toml",
                               "name = \"g\"\nseeds = [0]\ntask = \"mod_sum\"\n"
                               "[grid]\ngranularity = [0]\n"));
      },
      "g0.toml: axis 'granularity' expected integers >= 1, got 0");
}

TEST(SweepSpec, EvaluateTableAndTaskTablesAsAxisValues) {
  const std::string head =
      "name = \"v\"\nseeds = [0]\n[base]\nmodel = { d_model = 16, layers = 1, heads = 2 }\n";
  auto plan = load_sweep(write_sweep(
      "ev.toml",
      head +
          "[evaluate]\noption = \"threshold\"\nvalues = [0.1, 0.5]\n"
          "[grid]\ntask = [{ name = \"mod_sum\", seq_len = 12 }, { name = \"pointer_chase\" }]\n"));
  EXPECT_EQ(plan.eval_option, "threshold");
  EXPECT_EQ(plan.eval_values, (std::vector<double>{0.1, 0.5}));
  EXPECT_TRUE(plan.keep_models);
  ASSERT_EQ(plan.trials.size(), 2u);
  EXPECT_EQ(plan.trials[0].method, "task=mod_sum");  // a plugin block is labelled by its name
  EXPECT_EQ(plan.trials[0].config["task"]["seq_len"], 12);
  expect_error(
      [&] { load_sweep(write_sweep("ev2.toml", head + "[evaluate]\noption = \"threshold\"\n")); },
      "table 'evaluate' expected exactly option");
  expect_error([&] { load_sweep(write_sweep("ev3.toml", "keep_models = 1\n" + head)); },
               "key 'keep_models' expected true or false");
}

}  // namespace
}  // namespace moe
