// moe sweep eval: re-evaluate a sweep's trained models at several inference settings.
#include "experiments/eval_command.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "core/train/checkpoint.h"
#include "core/train/device.h"
#include "core/train/trainer.h"
#include "experiments/cli_args.h"
#include "experiments/commands.h"
#include "experiments/store_sink.h"
#include "results/store.h"

namespace po = boost::program_options;

namespace moe {
namespace {

std::vector<double> parse_values(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw std::invalid_argument("--values: '" + item + "' is not a number (e.g. 0.1,0.2,0.4)");
    }
  }
  if (out.empty()) throw std::invalid_argument("--values: expected a comma-separated list");
  return out;
}

}  // namespace

std::string model_path(const std::string& db, const std::string& run_key) {
  return (std::filesystem::path(db).parent_path() / "models" / (run_key + ".pt")).string();
}

int64_t evaluate_trials(const std::vector<Trial>& trials, const std::string& db,
                        const std::string& option, const std::vector<double>& values,
                        std::ostream& log) {
  results::Store store(db);
  std::map<std::string, std::shared_ptr<Task>> tasks;  // loaded once per task config
  int64_t written = 0, no_model = 0;
  for (const auto& t : trials) {
    auto row = store.find_run(t.run_key);
    if (!row || row->status != results::RunStatus::kCompleted) continue;
    std::vector<double> todo;
    for (double v : values) {
      if (!store.has_reeval(row->id, option, v)) todo.push_back(v);
    }
    if (todo.empty()) continue;
    auto config =
        ExperimentConfig::from_json(nlohmann::json::parse(row->config_json), "run " + t.run_key);
    if (config.model.moe_every == 0) continue;  // dense: no router to set
    const auto path = model_path(db, t.run_key);
    if (!std::filesystem::exists(path)) {
      ++no_model;
      continue;
    }
    const auto device = select_device(config.device);
    configure_threads(config.threads);
    auto& task = tasks[config.task.dump()];
    if (!task) {
      task = make_task(PluginSpec::from_block("task", config.task), TaskContext{config.data_dir});
    }
    torch::manual_seed(config.seed);
    auto model = build_model(config, task->info());
    load_model(path, model);
    model->to(device);
    std::vector<Router> routers;
    for (auto& layer : model->moe_layers()) {
      const auto known = layer->router->inference_options();
      if (std::find(known.begin(), known.end(), option) != known.end()) {
        routers.push_back(layer->router);
      }
    }
    if (routers.empty()) continue;  // e.g. top_k has no threshold
    StoreSink writer(store, row->id);
    for (double v : todo) {
      for (auto& r : routers) r->set_inference_option(option, v);
      torch::manual_seed(config.seed);
      const auto r = evaluate(model, *task, Split::kTest, config.train.eval_batch_size, 0, device);
      write_eval(writer, config.train.steps, MetricSplit::reeval(option, v), r, task->info());
      store.flush();
      ++written;
      const double k = r.mean_experts_over_layers().value_or(0);
      std::ostringstream line;  // own stream: the caller's formatting flags stay untouched
      line << "  " << t.method << " seed " << t.seed << "  " << option << "=" << v << "  accuracy "
           << std::fixed << std::setprecision(4) << r.accuracy << "  experts/token "
           << std::setprecision(2) << k << "  tokens/s " << std::setprecision(0) << r.tokens_per_s
           << "\n";
      log << line.str();
    }
  }
  if (no_model > 0) {
    log << "  " << no_model << " completed run(s) have no saved model (trained without "
        << "keep_models); retrain them to re-evaluate\n";
  }
  return written;
}

int eval_command(const std::vector<std::string>& args) {
  po::options_description desc(
      "moe sweep eval: re-evaluate a sweep's trained models with a router inference option\n"
      "set, on the test split, without retraining (stored as split reeval, view reevals)\n\n"
      "Usage: moe sweep eval FILE [--db PATH] [--option NAME --values V1,V2,...]\n\n"
      "Defaults come from the sweep file's [evaluate] table. Values already stored are\n"
      "skipped. Needs the models saved by a run with keep_models = true.\n\nOptions");
  std::string file, db, option, values_text;
  desc.add_options()("help,h", "show this help")("file", po::value(&file), "sweep file")(
      "db", po::value(&db)->default_value("results/moe.sqlite"), "results database")(
      "option", po::value(&option), "router inference option (e.g. threshold)")(
      "values", po::value(&values_text), "comma-separated values (e.g. 0.1,0.2,0.4)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (const int rc = parse_args(args, desc, pos, vm, "file"); rc >= 0) return rc;
  auto plan = load_sweep(file);
  if (option.empty()) option = plan.eval_option;
  auto values = values_text.empty() ? plan.eval_values : parse_values(values_text);
  if (option.empty() || values.empty()) {
    throw std::invalid_argument(file + ": no [evaluate] table; pass --option and --values");
  }
  if (!std::filesystem::exists(db)) throw std::invalid_argument("--db " + db + ": no such file");
  std::cerr << "[" << plan.name << "] re-evaluating at " << option << " in {";
  for (size_t i = 0; i < values.size(); ++i) std::cerr << (i ? ", " : "") << values[i];
  std::cerr << "}\n";
  const auto n = evaluate_trials(plan.trials, db, option, values, std::cerr);
  std::cerr << "[" << plan.name << "] " << n << " evaluation(s) written to " << db << "\n";
  return 0;
}

}  // namespace moe
