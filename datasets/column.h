// Column<T>: one interaction array of a Dataset (users, items, ratings, times, split parts).
//
// Why not std::vector? A cached dataset is read by mapping the cache file: the arrays then point
// into the page cache, and a 20 M-row dataset loads in milliseconds instead of paying to fault in
// and copy 400 MB of fresh memory (which costs more than reading it). A Column is either owned (a
// std::vector) or a read-only view of such a mapping, kept alive by a shared handle. Reading is the
// same for both. Any mutable access to a view (non-const operator[], data(), begin(), resize,
// push_back, ...) first copies it into owned storage ("copy on write"), so copies of a Dataset
// never see each other's changes and the mapping itself is never written.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace rzoo {

template <class T>
class Column {
 public:
  using value_type = T;
  using size_type = size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reference = T&;
  using const_reference = const T&;

  Column() = default;
  Column(std::initializer_list<T> values) : own_(values) { sync(); }
  explicit Column(size_t n, const T& v = T()) : own_(n, v) { sync(); }
  Column(std::vector<T> v) : own_(std::move(v)) { sync(); }  // NOLINT: implicit on purpose
  template <class It, class = decltype(*std::declval<It>())>
  Column(It first, It last) : own_(first, last) { sync(); }

  Column(const Column& o) : own_(o.own_), keep_(o.keep_) {
    if (keep_) ptr_ = o.ptr_, n_ = o.n_;
    else sync();
  }
  Column(Column&& o) noexcept : own_(std::move(o.own_)), keep_(std::move(o.keep_)) {
    if (keep_) ptr_ = o.ptr_, n_ = o.n_;
    else sync();
    o.reset_empty();
  }
  Column& operator=(const Column& o) {
    if (this != &o) {
      own_ = o.own_;
      keep_ = o.keep_;
      if (keep_) ptr_ = o.ptr_, n_ = o.n_;
      else sync();
    }
    return *this;
  }
  Column& operator=(Column&& o) noexcept {
    if (this != &o) {
      own_ = std::move(o.own_);
      keep_ = std::move(o.keep_);
      if (keep_) ptr_ = o.ptr_, n_ = o.n_;
      else sync();
      o.reset_empty();
    }
    return *this;
  }
  Column& operator=(std::vector<T> v) {
    own_ = std::move(v);
    keep_.reset();
    sync();
    return *this;
  }
  Column& operator=(std::initializer_list<T> values) { return *this = std::vector<T>(values); }

  // A read-only view of n values at p, valid while `keep` lives (e.g. a mapped file).
  static Column view(std::shared_ptr<const void> keep, const T* p, size_t n) {
    Column c;
    c.keep_ = std::move(keep);
    c.ptr_ = const_cast<T*>(p);  // never written through: mutable access copies first
    c.n_ = n;
    return c;
  }
  bool is_view() const { return static_cast<bool>(keep_); }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const T* data() const { return ptr_; }
  const T& operator[](size_t i) const { return ptr_[i]; }
  const T* begin() const { return ptr_; }
  const T* end() const { return ptr_ + n_; }
  const T* cbegin() const { return ptr_; }
  const T* cend() const { return ptr_ + n_; }
  const T& front() const { return ptr_[0]; }
  const T& back() const { return ptr_[n_ - 1]; }

  T* data() { return own().data(); }
  T& operator[](size_t i) { return own()[i]; }
  T* begin() { return own().data(); }
  T* end() { return own().data() + n_; }
  T& front() { return own().front(); }
  T& back() { return own().back(); }

  // The owned storage (copying a view first), for code that needs a std::vector.
  std::vector<T>& vec() { return own(); }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  void reserve(size_t n) { own().reserve(n); sync(); }
  void resize(size_t n) { own().resize(n); sync(); }
  void resize(size_t n, const T& v) { own().resize(n, v); sync(); }
  void push_back(const T& v) { own().push_back(v); sync(); }
  template <class... A> T& emplace_back(A&&... a) { own().emplace_back(std::forward<A>(a)...); sync(); return own_.back(); }
  void pop_back() { own().pop_back(); sync(); }
  void assign(size_t n, const T& v) { keep_.reset(); own_.assign(n, v); sync(); }
  template <class It, class = decltype(*std::declval<It>())>
  void assign(It first, It last) {
    std::vector<T> v(first, last);  // first/last may point into this column's own view
    *this = std::move(v);
  }
  void clear() { keep_.reset(); own_.clear(); sync(); }
  void shrink_to_fit() { own().shrink_to_fit(); sync(); }
  size_t capacity() const { return keep_ ? n_ : own_.capacity(); }
  void swap(Column& o) noexcept { std::swap(*this, o); }

  friend bool operator==(const Column& a, const Column& b) { return a.n_ == b.n_ && std::equal(a.begin(), a.end(), b.begin()); }
  friend bool operator!=(const Column& a, const Column& b) { return !(a == b); }
  friend bool operator==(const Column& a, const std::vector<T>& b) { return a.n_ == b.size() && std::equal(a.begin(), a.end(), b.begin()); }
  friend bool operator==(const std::vector<T>& b, const Column& a) { return a == b; }
  friend bool operator!=(const Column& a, const std::vector<T>& b) { return !(a == b); }
  friend bool operator!=(const std::vector<T>& b, const Column& a) { return !(a == b); }

 private:
  std::vector<T>& own() {
    if (keep_) {
      std::vector<T> copy(ptr_, ptr_ + n_);
      keep_.reset();
      own_ = std::move(copy);
      sync();
    }
    return own_;
  }
  void sync() { ptr_ = own_.data(), n_ = own_.size(); }
  void reset_empty() { own_.clear(); keep_.reset(); sync(); }

  std::vector<T> own_;
  std::shared_ptr<const void> keep_;  // set for a view
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

}  // namespace rzoo
