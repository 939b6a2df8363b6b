#pragma once
// "{{var}}" templates, compiled once and rendered per request. Names: letters, digits, '_', '-', '.', e.g.
// {{vu}}, {{iter}}, {{row.user}}, {{token}}. "{{" with no closing "}}" is an error; so is an empty name.
#include "userflux/result.h"

#include <QString>
#include <QStringList>

#include <functional>
#include <optional>
#include <vector>

namespace Userflux {

class Template {
public:
    Template() = default;
    // Compiles `text`. Errors name the offset and the problem.
    static Result<Template> compile(const QString &text);

    bool isConstant() const { return m_names.isEmpty(); }
    // True when the whole text is one "{{name}}" (JSON bodies then keep the variable's own JSON type).
    bool isSingleVariable() const { return m_parts.size() == 1 && m_parts.front().variable; }
    const QStringList &variables() const { return m_names; }
    const QString &source() const { return m_source; }

    // Renders with `lookup` (returns nullopt for an unknown name, which renders as "" and is appended to
    // `missing` when given). Pure; thread-safe.
    QString render(const std::function<std::optional<QString>(const QString &)> &lookup,
                   QStringList *missing = nullptr) const;

private:
    struct Part {
        bool variable = false;
        QString text; // literal text or variable name
    };
    std::vector<Part> m_parts;
    QStringList m_names;
    QString m_source;
};

} // namespace Userflux
