#pragma once
// Userflux::Result<T>: a value or an error with a reason code and a user-facing message (in the spirit of
// std::expected, which g++ 12 lacks). Never bool + out-string.
#include <QString>
#include <optional>
#include <utility>
#include <variant>

namespace Userflux {

struct Error {
    QString code;     // stable, machine-readable reason, e.g. "io", "invalid_run_id", "incompatible_api"
    QString message;  // one line a person can act on
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_v(std::move(value)) {}
    Result(Error error) : m_v(std::move(error)) {}
    bool ok() const { return m_v.index() == 0; }
    explicit operator bool() const { return ok(); }
    T &value() { return std::get<0>(m_v); }
    const T &value() const { return std::get<0>(m_v); }
    T &operator*() { return value(); }
    const T &operator*() const { return value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }
    const Error &error() const { return std::get<1>(m_v); }

private:
    std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : m_e(std::move(error)) {}
    bool ok() const { return !m_e.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error &error() const { return *m_e; }

private:
    std::optional<Error> m_e;
};

} // namespace Userflux
