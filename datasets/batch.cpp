#include "datasets/batch.h"

namespace rzoo {

const char* to_string(InputType t) {
  switch (t) {
    case InputType::None: return "none (closed form)";
    case InputType::Pointwise: return "pointwise";
    case InputType::Pairwise: return "pairwise";
    case InputType::Sequence: return "sequence";
    case InputType::Users: return "users";
  }
  return "?";
}

}  // namespace rzoo
