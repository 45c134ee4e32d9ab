#include "core/distributed.h"

#include <torch/torch.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "rzoo_build.h"

// c10d's process groups: Gloo (CPU tensors, and CUDA tensors where LibTorch has CUDA) when its
// headers were found; NCCL (CUDA tensors only) with LibTorch 2.x built with CUDA and NCCL, when
// nccl.h was found (CMakeLists.txt). Either is enough for a distributed run.
#define RZOO_HAVE_C10D (RZOO_HAVE_GLOO || RZOO_HAVE_NCCL)
#if RZOO_HAVE_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if RZOO_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // what LibTorch's own build defines; its Gloo header is empty without it
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if RZOO_HAVE_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL  // as for Gloo: the header is empty without it
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace rzoo {

namespace {

std::string first_line_of(const std::string& s) {
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// An integer environment variable in [lo, hi]; `required` false: `fallback` when unset.
int env_int(const char* name, int lo, int hi, bool required, int fallback) {
  const char* v = std::getenv(name);
  if (!v) {
    if (required)
      fail("distributed launch: {} is not set (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
           "MASTER_PORT; `rzoo train --nproc N` sets them for N local processes)", name);
    return fallback;
  }
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || x < lo || x > hi)
    fail("distributed launch: {}={} is not an integer in [{}, {}]", name, v, lo, hi);
  return static_cast<int>(x);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (!std::getenv("WORLD_SIZE")) return e;
  e.present = true;
  e.world = env_int("WORLD_SIZE", 1, 1 << 16, true, 1);
  e.rank = env_int("RANK", 0, e.world - 1, true, 0);
  e.local_rank = env_int("LOCAL_RANK", 0, e.world - 1, false, 0);
  if (e.world == 1) return e;  // nothing to join
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr)
    fail("distributed launch: MASTER_ADDR is not set (the host of rank 0, e.g. 127.0.0.1 on one machine; torchrun "
         "sets it, and `rzoo train --nproc N` for local runs)");
  e.addr = addr;
  e.port = env_int("MASTER_PORT", 1, 65535, true, 0);
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  return e;
}

bool writes_files() {
  const Distributed* d = Distributed::get();
  return !d || d->root();
}

std::string Distributed::resolve_backend(const std::string& backend, bool cuda, int gpus, int local_world,
                                         bool have_gloo, bool have_nccl) {
  if (backend != "auto" && backend != "gloo" && backend != "nccl")
    fail("distributed.backend: '{}' is not one of auto, gloo, nccl", backend);
  if (backend == "gloo" || (backend == "auto" && !(cuda && have_nccl && gpus >= local_world))) {
    if (have_gloo) return "gloo";
    if (backend == "gloo" || !have_nccl)
      fail("distributed.backend: {}: this rzoo was built without LibTorch's Gloo process group (its headers were not "
           "found: apt-get install libgloo-dev, then rebuild){}", backend,
           have_nccl ? "; its NCCL group carries CUDA tensors only (device: cuda, one GPU per process)" : "");
    // auto, NCCL built but not usable for this run, and no Gloo: say why NCCL does not fit.
  }
  // nccl, asked for or chosen by auto.
  if (!have_nccl)
    fail("distributed.backend: nccl is not available in this rzoo build (it needs LibTorch 2.x built with CUDA and "
         "NCCL, and nccl.h when rzoo is configured: set NCCL_INCLUDE_DIR); use auto or gloo");
  if (!cuda)
    fail("distributed.backend: {}: NCCL carries CUDA tensors only and this run's device is the CPU (use device: cuda, "
         "or distributed.backend: gloo)", backend);
  if (gpus < local_world)
    fail("distributed.backend: {}: NCCL needs a GPU per process, and this machine runs {} processes on {} GPU(s) "
         "(start at most {} per machine, or use distributed.backend: gloo)", backend, local_world, gpus, gpus);
  return "nccl";
}

#if RZOO_HAVE_C10D

struct Distributed::Impl {
  int rank = 0, world = 1;
  std::string addr;
  int port = 0;
  bool agent_store = false;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;      // the collectives' rendezvous and gather_texts
  c10::intrusive_ptr<c10d::Store> hb_store;   // a second connection, the heartbeat thread's own
  std::string backend;                        // "gloo" or "nccl": the group of the model's tensors
#if RZOO_HAVE_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;  // CPU tensors; CUDA ones too when there is no NCCL group
#endif
#if RZOO_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;  // CUDA tensors (backend nccl); CPU ones pass through the GPU
  c10::Device gpu{c10::kCUDA, 0};                   // without a Gloo group
#endif
  // The heartbeat: a detached thread that adds 1 to hb/<rank> every second until stopped.
  std::shared_ptr<std::atomic<bool>> hb_stop = std::make_shared<std::atomic<bool>>(false);
  int64_t texts = 0;
};

namespace {
Distributed* g_dist = nullptr;  // never destroyed while the process runs (see finish())

c10::intrusive_ptr<c10d::Store> connect_store(const DistEnv& env, bool server, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(env.port);
  o.isServer = server;
  o.numWorkers = server ? c10::optional<std::size_t>(static_cast<std::size_t>(env.world)) : c10::nullopt;
  o.waitWorkers = false;  // the process group's own rendezvous waits for every rank
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(env.addr, o);
  // torchrun's agent keeps its own keys in the same store.
  return c10::make_intrusive<c10d::PrefixStore>("rzoo", tcp);
}

#if RZOO_HAVE_GLOO
std::shared_ptr<::gloo::transport::Device> gloo_device(const DistEnv& env) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  // One machine: the loopback interface, whatever the host name resolves to.
  if (env.addr == "localhost" || env.addr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

// The processes on this machine: torchrun's LOCAL_WORLD_SIZE (`--nproc N` sets it too), else 1.
int local_world_size() {
  const char* v = std::getenv("LOCAL_WORLD_SIZE");
  const int n = v ? std::atoi(v) : 0;
  return n > 0 ? n : 1;
}
}  // namespace

void Distributed::init(const DistEnv& env, const std::string& backend, bool cuda, double timeout_s) {
  if (g_dist || !env.present || env.world <= 1) return;
  int gpus = 0;
#if RZOO_HAVE_NCCL
  if (cuda) gpus = static_cast<int>(c10::cuda::device_count());
#endif
  auto impl = std::make_unique<Impl>();
  impl->backend = resolve_backend(backend, cuda, gpus, local_world_size(), RZOO_HAVE_GLOO != 0, RZOO_HAVE_NCCL != 0);
  impl->rank = env.rank;
  impl->world = env.world;
  impl->addr = env.addr;
  impl->port = env.port;
  impl->agent_store = env.agent_store;
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000.0));
  const bool server = env.rank == 0 && !env.agent_store;
  try {
    impl->store = connect_store(env, server, impl->timeout);
    impl->hb_store = connect_store(env, false, impl->timeout);
  } catch (const std::exception& e) {
    if (server)
      fail("distributed: rank 0 cannot serve the rendezvous store at {}:{}: {} (is the port in use? choose another "
           "MASTER_PORT)", env.addr, env.port, first_line_of(e.what()));
    fail("distributed: rank {} found no rendezvous store at {}:{} within distributed.timeout {} s: {}", env.rank,
         env.addr, env.port, timeout_s, first_line_of(e.what()));
  }
  try {
#if RZOO_HAVE_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
    opts->devices.push_back(gloo_device(env));
    opts->threads = 1;  // one collective at a time per step: a second thread only competes with training for cores
    // Its own key space in the store, so that an NCCL group beside it never reads its keys.
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store),
                                                             env.rank, env.world, opts);
#endif
#if RZOO_HAVE_NCCL
    if (impl->backend == "nccl") {
      // This process's GPU, as setup_runtime picks it (LOCAL_RANK modulo the GPUs): NCCL's
      // communicator and its barrier use the current device.
      impl->gpu = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank % gpus));
      c10::cuda::set_device(impl->gpu.index());
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = impl->timeout;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", impl->store),
                                                               env.rank, env.world, opts);
    }
#endif
  } catch (const std::exception& e) {
    fail("distributed: rank {} could not join the {} ranks at {}:{} within distributed.timeout {} s: {}", env.rank,
         env.world, env.addr, env.port, timeout_s, first_line_of(e.what()));
  }
  // The heartbeat (see failed()).
  {
    auto store = impl->hb_store;
    auto stop = impl->hb_stop;
    const std::string key = "hb/" + std::to_string(env.rank);
    std::thread([store, stop, key] {
      while (!stop->load()) {
        try {
          store->add(key, 1);
        } catch (...) {
          return;  // the store is gone: the collectives will say so
        }
        for (int i = 0; i < 10 && !stop->load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }).detach();
  }
  g_dist = new Distributed(std::move(impl));
}

Distributed* Distributed::get() { return g_dist; }

void Distributed::finish() {
  if (!g_dist) return;
  g_dist->impl_->hb_stop->store(true);
  // Rank 0 serves the store: it must not leave while another rank still uses it.
  g_dist->barrier("the end of the run");
}

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

int Distributed::rank() const { return impl_->rank; }
const std::string& Distributed::backend() const { return impl_->backend; }
int Distributed::world() const { return impl_->world; }

void Distributed::failed(const std::string& what, const std::string& error) const {
  // Which ranks stopped answering: those whose heartbeat counter did not move in 2.5 s.
  std::string lost;
  try {
    std::vector<int64_t> before(static_cast<size_t>(impl_->world));
    for (int r = 0; r < impl_->world; ++r) before[static_cast<size_t>(r)] = impl_->store->add("hb/" + std::to_string(r), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    for (int r = 0; r < impl_->world; ++r)
      if (r != impl_->rank && impl_->store->add("hb/" + std::to_string(r), 0) == before[static_cast<size_t>(r)])
        lost += (lost.empty() ? "" : ", ") + std::to_string(r);
    if (!lost.empty()) lost = fmt::format("; rank(s) {} stopped answering (died or hung)", lost);
  } catch (const std::exception&) {
    lost = impl_->agent_store ? "; the rendezvous store (torchrun's agent) is unreachable"
                              : "; rank 0 stopped answering (it serves the rendezvous store: died or hung)";
  }
  fail("distributed: rank {} of {}: {} failed: {}{}", impl_->rank, impl_->world, what, first_line_of(error), lost);
}

namespace {
// One collective on one tensor, started on the group that carries it: a CUDA tensor on the NCCL
// group when there is one; otherwise the Gloo group; a CPU tensor when there is only an NCCL group
// through a copy on this process's GPU (copied back by finish()). c10d reads one call's list as
// one tensor per local device, so each tensor is its own call.
struct Pending {
  c10::intrusive_ptr<c10d::Work> work;
  at::Tensor staged, target;  // staged: the GPU copy of target (a CPU tensor) when it went through NCCL
  void finish() {
    work->wait();
    if (staged.defined()) target.copy_(staged);
  }
};

// start(group, tensors) with group one of the Impl's process groups (a generic lambda).
template <class Impl, class Start>
Pending start_on(Impl& impl, const at::Tensor& t, Start start) {
  Pending p;
#if RZOO_HAVE_NCCL
  if (impl.nccl && t.is_cuda()) {
    std::vector<at::Tensor> one{t};
    p.work = start(impl.nccl, one);
    return p;
  }
#endif
#if RZOO_HAVE_GLOO
  std::vector<at::Tensor> one{t};
  p.work = start(impl.gloo, one);
#elif RZOO_HAVE_NCCL
  p.target = t;
  p.staged = t.to(impl.gpu);
  std::vector<at::Tensor> one{p.staged};
  p.work = start(impl.nccl, one);
#endif
  return p;
}

template <class Impl, class Start>
void each_tensor(Impl& impl, std::vector<at::Tensor>& ts, Start start) {
  std::vector<Pending> pending;
  pending.reserve(ts.size());
  for (auto& t : ts) pending.push_back(start_on(impl, t, start));
  for (auto& p : pending) p.finish();
}
}  // namespace

void Distributed::allreduce_sum(std::vector<at::Tensor>& ts, const std::string& what) {
  try {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = impl_->timeout;
    each_tensor(*impl_, ts, [&](auto& pg, std::vector<at::Tensor>& one) { return pg->allreduce(one, o); });
  } catch (const std::exception& e) {
    failed(what, e.what());
  }
}

std::vector<at::Tensor> Distributed::allgather(const at::Tensor& mine, const std::string& what) {
  std::vector<at::Tensor> result;
  try {
    c10d::AllgatherOptions o;
    o.timeout = impl_->timeout;
    // Every rank's tensor lands in out[0][r]; start_on picks the group by the input's device (and
    // stages a CPU input on the GPU for an NCCL-only build; the outputs then follow it there).
    std::vector<std::vector<at::Tensor>> out(1);
    Pending p = start_on(*impl_, mine, [&](auto& pg, std::vector<at::Tensor>& in) {
      for (int r = 0; r < impl_->world; ++r) out[0].push_back(at::empty_like(in[0]));
      return pg->allgather(out, in, o);
    });
    p.work->wait();
    for (auto& t : out[0]) result.push_back(p.staged.defined() ? t.to(mine.device()) : t);
  } catch (const std::exception& e) {
    failed(what, e.what());
  }
  return result;
}

void Distributed::broadcast(std::vector<at::Tensor>& ts, int root, const std::string& what) {
  try {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = impl_->timeout;
    each_tensor(*impl_, ts, [&](auto& pg, std::vector<at::Tensor>& one) { return pg->broadcast(one, o); });
  } catch (const std::exception& e) {
    failed(what, e.what());
  }
}

void Distributed::barrier(const std::string& what) {
  try {
    c10d::BarrierOptions o;
    o.timeout = impl_->timeout;
#if RZOO_HAVE_GLOO
    impl_->gloo->barrier(o)->wait();
#else
    // NCCL's barrier: an all-reduce on the current device (set at init), then a wait on it.
    o.device_ids = {static_cast<int64_t>(impl_->gpu.index())};
    impl_->nccl->barrier(o)->wait();
#endif
  } catch (const std::exception& e) {
    failed(what, e.what());
  }
}

std::vector<std::string> Distributed::gather_texts(const std::string& key, const std::string& mine) {
  const std::string base = fmt::format("text/{}/{}/", impl_->texts++, key);
  std::vector<std::string> out;
  try {
    impl_->store->set(base + std::to_string(impl_->rank), std::vector<uint8_t>(mine.begin(), mine.end()));
    for (int r = 0; r < impl_->world; ++r) {
      const auto v = impl_->store->get(base + std::to_string(r));
      out.emplace_back(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    failed("exchanging " + key, e.what());
  }
  return out;
}

#else  // neither Gloo's headers nor NCCL: single-process only

struct Distributed::Impl {};

void Distributed::init(const DistEnv& env, const std::string& backend, bool, double) {
  if (!env.present || env.world <= 1) return;
  fail("distributed launch (WORLD_SIZE={}, distributed.backend {}): this rzoo was built without LibTorch's Gloo process "
       "group (its headers were not found: apt-get install libgloo-dev, then rebuild)", env.world, backend);
}
Distributed* Distributed::get() { return nullptr; }
void Distributed::finish() {}
Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;
int Distributed::rank() const { return 0; }
const std::string& Distributed::backend() const {
  static const std::string none;
  return none;
}
int Distributed::world() const { return 1; }
void Distributed::failed(const std::string& what, const std::string& error) const { fail("{}: {}", what, error); }
void Distributed::allreduce_sum(std::vector<at::Tensor>&, const std::string&) {}
std::vector<at::Tensor> Distributed::allgather(const at::Tensor& mine, const std::string&) { return {mine}; }
void Distributed::broadcast(std::vector<at::Tensor>&, int, const std::string&) {}
void Distributed::barrier(const std::string&) {}
std::vector<std::string> Distributed::gather_texts(const std::string&, const std::string& mine) { return {mine}; }

#endif

}  // namespace rzoo
