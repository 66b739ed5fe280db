#pragma once
// Settings that the tasks, the model and the trainer share, as enums (the Activation
// pattern): each is compared as a value, never as a string; its names are what files and
// messages spell.
#include <string>
#include <vector>

namespace moe {

/// The output head a task needs (TaskInfo::head, TransformerOptions::head): kLm, next-token
/// logits through the tied embedding (perplexity is reported); kTag, a label per position;
/// kCls, one label per sequence from the mean of its unpadded final states.
enum class Head { kLm, kTag, kCls };

/// The names, in enum order: [lm, tag, cls].
inline const std::vector<std::string>& head_names() {
  static const std::vector<std::string> names = {"lm", "tag", "cls"};
  return names;
}
inline const std::string& head_name(Head h) { return head_names().at(static_cast<size_t>(h)); }

/// train.precision: kFp32, or kBf16 (the forward pass under autocast to bfloat16 with fp32
/// master weights and optimizer state; routing and aux losses in fp32).
enum class Precision { kFp32, kBf16 };

/// The names, in enum order: [fp32, bf16].
inline const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = {"fp32", "bf16"};
  return names;
}

}  // namespace moe
