#include "userflux/configcheck.h"

#include <cmath>
#include <limits>

namespace Userflux {

namespace {

// Levenshtein distance, to suggest "did you mean" for misspelt fields.
int distance(const QString &a, const QString &b)
{
    std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
    for (int j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (int i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (int j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

} // namespace

QString jsonTypeName(const nlohmann::json &v)
{
    switch (v.type()) {
    case nlohmann::json::value_t::null: return QStringLiteral("null");
    case nlohmann::json::value_t::object: return QStringLiteral("an object");
    case nlohmann::json::value_t::array: return QStringLiteral("a list");
    case nlohmann::json::value_t::string: return QStringLiteral("a string");
    case nlohmann::json::value_t::boolean: return QStringLiteral("a boolean");
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return QStringLiteral("an integer");
    case nlohmann::json::value_t::number_float: return QStringLiteral("a number");
    default: return QStringLiteral("an unsupported value");
    }
}

QString ConfigChecker::join(const QString &path, const QString &key)
{
    return path.isEmpty() ? key : path + QLatin1Char('.') + key;
}

QString ConfigChecker::index(const QString &path, int i)
{
    return QStringLiteral("%1[%2]").arg(path).arg(i);
}

bool ConfigChecker::object(const nlohmann::json &value, const QString &path, const QStringList &allowed)
{
    if (!value.is_object()) {
        error(path.isEmpty() ? QStringLiteral("(top level)") : path,
              QStringLiteral("must be an object, got %1").arg(jsonTypeName(value)));
        return false;
    }
    for (auto it = value.begin(); it != value.end(); ++it) {
        const QString key = QString::fromStdString(it.key());
        if (allowed.contains(key))
            continue;
        QString best;
        int bestD = 3;
        for (const QString &a : allowed) {
            const int d = distance(key, a);
            if (d < bestD)
                bestD = d, best = a;
        }
        error(join(path, key), best.isEmpty()
                  ? QStringLiteral("unknown field (allowed: %1)").arg(allowed.join(", "))
                  : QStringLiteral("unknown field; did you mean \"%1\"?").arg(best));
    }
    return true;
}

std::optional<nlohmann::json> ConfigChecker::required(const nlohmann::json &obj, const char *key, const QString &path)
{
    if (!obj.is_object() || !obj.contains(key)) {
        error(join(path, QString::fromLatin1(key)), QStringLiteral("is required"));
        return std::nullopt;
    }
    return obj[key];
}

std::optional<QString> ConfigChecker::string(const nlohmann::json &obj, const char *key, const QString &path,
                                             bool isRequired, bool allowEmpty)
{
    const QString p = join(path, QString::fromLatin1(key));
    if (!obj.is_object() || !obj.contains(key)) {
        if (isRequired)
            error(p, QStringLiteral("is required"));
        return std::nullopt;
    }
    const auto &v = obj[key];
    if (!v.is_string()) {
        error(p, QStringLiteral("must be a string, got %1").arg(jsonTypeName(v)));
        return std::nullopt;
    }
    QString s = QString::fromStdString(v.get<std::string>());
    if (!allowEmpty && s.trimmed().isEmpty()) {
        error(p, QStringLiteral("must not be empty"));
        return std::nullopt;
    }
    return s;
}

std::optional<QString> ConfigChecker::oneOf(const nlohmann::json &obj, const char *key, const QString &path,
                                            const QStringList &values, bool isRequired)
{
    auto s = string(obj, key, path, isRequired);
    if (!s)
        return std::nullopt;
    if (!values.contains(*s)) {
        error(join(path, QString::fromLatin1(key)),
              QStringLiteral("\"%1\" is not one of %2").arg(*s, values.join(", ")));
        return std::nullopt;
    }
    return s;
}

std::optional<qint64> ConfigChecker::integer(const nlohmann::json &obj, const char *key, const QString &path, qint64 min,
                                             qint64 max, bool isRequired)
{
    const QString p = join(path, QString::fromLatin1(key));
    if (!obj.is_object() || !obj.contains(key)) {
        if (isRequired)
            error(p, QStringLiteral("is required"));
        return std::nullopt;
    }
    const auto &v = obj[key];
    if (!v.is_number_integer()) {
        error(p, QStringLiteral("must be an integer, got %1").arg(jsonTypeName(v)));
        return std::nullopt;
    }
    const qint64 n = v.is_number_unsigned() ? qint64(std::min<quint64>(v.get<quint64>(), quint64(std::numeric_limits<qint64>::max())))
                                            : v.get<qint64>();
    if (n < min || n > max) {
        error(p, QStringLiteral("must be between %1 and %2, got %3").arg(min).arg(max).arg(n));
        return std::nullopt;
    }
    return n;
}

std::optional<double> ConfigChecker::number(const nlohmann::json &obj, const char *key, const QString &path, double min,
                                            double max, bool isRequired)
{
    const QString p = join(path, QString::fromLatin1(key));
    if (!obj.is_object() || !obj.contains(key)) {
        if (isRequired)
            error(p, QStringLiteral("is required"));
        return std::nullopt;
    }
    const auto &v = obj[key];
    if (!v.is_number()) {
        error(p, QStringLiteral("must be a number, got %1").arg(jsonTypeName(v)));
        return std::nullopt;
    }
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < min || d > max) {
        error(p, QStringLiteral("must be between %1 and %2, got %3").arg(min).arg(max).arg(d));
        return std::nullopt;
    }
    return d;
}

std::optional<bool> ConfigChecker::boolean(const nlohmann::json &obj, const char *key, const QString &path, bool isRequired)
{
    const QString p = join(path, QString::fromLatin1(key));
    if (!obj.is_object() || !obj.contains(key)) {
        if (isRequired)
            error(p, QStringLiteral("is required"));
        return std::nullopt;
    }
    if (!obj[key].is_boolean()) {
        error(p, QStringLiteral("must be true or false, got %1").arg(jsonTypeName(obj[key])));
        return std::nullopt;
    }
    return obj[key].get<bool>();
}

std::optional<std::chrono::microseconds> ConfigChecker::duration(const nlohmann::json &obj, const char *key,
                                                                 const QString &path, bool isRequired, bool allowZero)
{
    auto s = string(obj, key, path, isRequired);
    if (!s)
        return std::nullopt;
    const QString p = join(path, QString::fromLatin1(key));
    auto d = parseDuration(*s);
    if (!d) {
        error(p, d.error().message);
        return std::nullopt;
    }
    if (!allowZero && d->count() == 0) {
        error(p, QStringLiteral("must be longer than 0"));
        return std::nullopt;
    }
    return *d;
}

std::optional<DurationRange> ConfigChecker::durationRange(const nlohmann::json &obj, const char *key, const QString &path,
                                                          bool isRequired)
{
    auto s = string(obj, key, path, isRequired);
    if (!s)
        return std::nullopt;
    auto r = parseDurationRange(*s);
    if (!r) {
        error(join(path, QString::fromLatin1(key)), r.error().message);
        return std::nullopt;
    }
    return *r;
}

bool ConfigChecker::stringMap(const nlohmann::json &obj, const char *key, const QString &path)
{
    if (!obj.is_object() || !obj.contains(key))
        return true;
    const QString p = join(path, QString::fromLatin1(key));
    const auto &v = obj[key];
    if (!v.is_object()) {
        error(p, QStringLiteral("must be an object of name: value strings, got %1").arg(jsonTypeName(v)));
        return false;
    }
    bool ok = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (!it.value().is_string()) {
            error(join(p, QString::fromStdString(it.key())),
                  QStringLiteral("must be a string, got %1").arg(jsonTypeName(it.value())));
            ok = false;
        }
    }
    return ok;
}

} // namespace Userflux
