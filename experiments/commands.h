#pragma once
// Sub-commands of the `moe` CLI. Each takes the arguments after its name and returns the
// process exit status; `--help` prints its usage.
#include <string>
#include <vector>

namespace moe {

int train_command(const std::vector<std::string>& args);
int plugins_command(const std::vector<std::string>& args);
int sweep_command(const std::vector<std::string>& args);
int query_command(const std::vector<std::string>& args);
int plot_command(const std::vector<std::string>& args);
int merge_command(const std::vector<std::string>& args);
int compare_command(const std::vector<std::string>& args);
int report_command(const std::vector<std::string>& args);
int tokenize_command(const std::vector<std::string>& args);
int eval_command(const std::vector<std::string>& args);  ///< moe sweep eval

}  // namespace moe
