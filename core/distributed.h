// Distributed runs on LibTorch's own engine, torch.distributed's C++ core (c10d): a TCPStore
// rendezvous at MASTER_ADDR:MASTER_PORT, a Gloo process group (CPU tensors, and CUDA tensors
// where LibTorch has CUDA) and, in a CUDA build with NCCL, an NCCL group for the CUDA tensors of a
// run on GPUs (one GPU per process). Launched like PyTorch: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR and MASTER_PORT for each process; `rzoo train --nproc N` sets them for N local
// processes (apps/launch.cpp). A process without WORLD_SIZE (or with WORLD_SIZE 1) is an ordinary
// single-process run and never touches any of this.
//
// Every collective names what it was doing; when one fails (a peer died: its connections closed;
// or hung: the configured timeout passed), the error names the ranks that stopped answering, from
// per-rank heartbeat counters kept in the store (a rank whose counter no longer moves is gone).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rzoo {

// torchrun's environment. present: WORLD_SIZE is set (then the others must be, or it fails
// naming the one missing or malformed).
struct DistEnv {
  bool present = false;
  int rank = 0, world = 1, local_rank = 0;
  std::string addr;
  int port = 0;
  bool agent_store = false;  // torchrun's agent already serves the store at addr:port (TORCHELASTIC_USE_AGENT_STORE)
};
DistEnv dist_env_from_environment();

class Distributed {
 public:
  // Joins the process group of env (world > 1): rank 0 serves the TCPStore unless torchrun's agent
  // does, every rank waits for the others up to timeout_s, then builds the group(s) that
  // resolve_backend names. cuda: the run's tensors live on a GPU. Fails with a clear message (no
  // usable group in this build, an address that does not resolve, a port in use, peers that
  // never came).
  static void init(const DistEnv& env, const std::string& backend, bool cuda, double timeout_s);
  // distributed.backend (auto | gloo | nccl) for a run: "gloo" or "nccl", or a clear error. auto =
  // nccl when this build has NCCL, the run is on CUDA and the machine has a GPU per local process
  // (NCCL refuses two ranks on one GPU), else gloo (which also carries CUDA tensors). With nccl,
  // CPU tensors (the step's small bookkeeping) still go through Gloo when it is built.
  static std::string resolve_backend(const std::string& backend, bool cuda, int gpus, int local_world, bool have_gloo,
                                     bool have_nccl);
  // The process group, or null in a single-process run.
  static Distributed* get();
  // Waits for every rank (so that rank 0, which holds the store, leaves last) and stops the
  // heartbeat. Safe to call in a single-process run.
  static void finish();

  int rank() const;
  int world() const;
  bool root() const { return rank() == 0; }
  // "gloo" or "nccl": the group that carries the model's tensors.
  const std::string& backend() const;

  // In place, every (dense) tensor of `ts` (CPU, or CUDA with a CUDA LibTorch): the sum over
  // ranks. `what` names the step in an error. Sparse rows travel by allgather (trainer.cpp).
  void allreduce_sum(std::vector<at::Tensor>& ts, const std::string& what);
  // Every rank's `mine` (the same shape and type on every rank), in rank order.
  std::vector<at::Tensor> allgather(const at::Tensor& mine, const std::string& what);
  // In place: root's tensors to every rank (same shapes and types on every rank).
  void broadcast(std::vector<at::Tensor>& ts, int root, const std::string& what);
  void barrier(const std::string& what);
  // Every rank's `mine` under `key`, in rank order (through the store: for texts, not tensors).
  std::vector<std::string> gather_texts(const std::string& key, const std::string& mine);

  ~Distributed();

 private:
  struct Impl;
  explicit Distributed(std::unique_ptr<Impl> impl);
  [[noreturn]] void failed(const std::string& what, const std::string& error) const;
  std::unique_ptr<Impl> impl_;
};

// Rank 0 of a distributed run, or a single process: the one that writes files and logs.
bool writes_files();

// The block of [0, n) rank r of `world` takes: [n r / world, n (r + 1) / world).
inline std::pair<int64_t, int64_t> rank_block(int64_t n, int rank, int world) {
  return {n * rank / world, n * (rank + 1) / world};
}

}  // namespace rzoo
