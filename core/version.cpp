// The build's identity: rzoo's version and the git commit it was built from. Its own small file:
// the commit header changes with every commit, and only this file includes it.
#include <string>

#include "core/config.h"
#include "rzoo_build.h"
#include "rzoo_git_id.h"

namespace rzoo {

const char* version() { return RZOO_VERSION; }

const char* git_id() { return RZOO_GIT_ID; }

std::string build_string() { return std::string(RZOO_VERSION) + " (git " + RZOO_GIT_ID + ")"; }

}  // namespace rzoo
