#pragma once
// Small helpers that plugins and the core share to validate their config sections: each check appends an
// error with its path instead of stopping, so that a user sees every problem at once.
#include "userflux/duration.h"
#include "userflux/plugin.h"

#include <QString>
#include <QStringList>
#include <nlohmann/json.hpp>

#include <optional>

namespace Userflux {

class ConfigChecker {
public:
    explicit ConfigChecker(ConfigErrors *errors) : m_errors(errors) {}

    void error(const QString &path, const QString &message) { m_errors->append({path, message}); }

    // Child paths: join("target", "base_url") -> "target.base_url"; index("steps", 2) -> "steps[2]".
    static QString join(const QString &path, const QString &key);
    static QString index(const QString &path, int i);

    // `value` must be an object; keys outside `allowed` are errors ("unknown field"; a close match is suggested).
    bool object(const nlohmann::json &value, const QString &path, const QStringList &allowed);
    // Requires key presence; returns the value (or nullopt with an error recorded).
    std::optional<nlohmann::json> required(const nlohmann::json &obj, const char *key, const QString &path);

    std::optional<QString> string(const nlohmann::json &obj, const char *key, const QString &path, bool required,
                                  bool allowEmpty = false);
    std::optional<QString> oneOf(const nlohmann::json &obj, const char *key, const QString &path, const QStringList &values,
                                 bool required);
    std::optional<qint64> integer(const nlohmann::json &obj, const char *key, const QString &path, qint64 min, qint64 max,
                                  bool required);
    std::optional<double> number(const nlohmann::json &obj, const char *key, const QString &path, double min, double max,
                                 bool required);
    std::optional<bool> boolean(const nlohmann::json &obj, const char *key, const QString &path, bool required);
    std::optional<std::chrono::microseconds> duration(const nlohmann::json &obj, const char *key, const QString &path,
                                                      bool required, bool allowZero = true);
    std::optional<DurationRange> durationRange(const nlohmann::json &obj, const char *key, const QString &path,
                                               bool required);
    // An object whose values are all strings (headers).
    bool stringMap(const nlohmann::json &obj, const char *key, const QString &path);

    bool hasErrors() const { return !m_errors->isEmpty(); }

private:
    ConfigErrors *m_errors;
};

// JSON type name for messages: "a string", "a number", ...
QString jsonTypeName(const nlohmann::json &value);

} // namespace Userflux
