// Explicit result types for boundaries (config loading, control requests,
// table builds). The hot path never throws; errors travel as values.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace siplb {

struct Error {
    std::string message;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
    Result(Error err) : v_(std::move(err)) {}  // NOLINT(google-explicit-constructor)

    static Result fail(std::string message) { return Result(Error{std::move(message)}); }

    bool ok() const noexcept { return std::holds_alternative<T>(v_); }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T* operator->() { return &std::get<T>(v_); }
    const T* operator->() const { return &std::get<T>(v_); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const& { return std::get<Error>(v_); }
    const std::string& message() const { return std::get<Error>(v_).message; }

private:
    std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

inline Status ok_status() { return Status(Ok{}); }

}  // namespace siplb
