#include "userflux/template.h"

#include <QRegularExpression>

namespace Userflux {

Result<Template> Template::compile(const QString &text)
{
    static const QRegularExpression nameRe(QStringLiteral("^[A-Za-z_][A-Za-z0-9_.\\-]*$"));
    Template t;
    t.m_source = text;
    qsizetype pos = 0;
    while (pos < text.size()) {
        const qsizetype open = text.indexOf(QLatin1String("{{"), pos);
        if (open < 0) {
            t.m_parts.push_back({false, text.mid(pos)});
            break;
        }
        if (open > pos)
            t.m_parts.push_back({false, text.mid(pos, open - pos)});
        const qsizetype close = text.indexOf(QLatin1String("}}"), open + 2);
        if (close < 0)
            return Error{QStringLiteral("template"),
                         QStringLiteral("\"{{\" at offset %1 has no closing \"}}\"").arg(open)};
        const QString name = text.mid(open + 2, close - open - 2).trimmed();
        if (!nameRe.match(name).hasMatch())
            return Error{QStringLiteral("template"),
                         QStringLiteral("\"{{%1}}\" at offset %2 is not a variable name (letters, digits, _ . -)")
                             .arg(text.mid(open + 2, close - open - 2))
                             .arg(open)};
        t.m_parts.push_back({true, name});
        if (!t.m_names.contains(name))
            t.m_names << name;
        pos = close + 2;
    }
    return t;
}

QString Template::render(const std::function<std::optional<QString>(const QString &)> &lookup, QStringList *missing) const
{
    if (m_names.isEmpty())
        return m_source;
    QString out;
    for (const Part &p : m_parts) {
        if (!p.variable) {
            out += p.text;
            continue;
        }
        if (auto v = lookup(p.text))
            out += *v;
        else if (missing)
            missing->append(p.text);
    }
    return out;
}

} // namespace Userflux
