#include "userflux/runid.h"

#include <QDateTime>
#include <QRandomGenerator>
#include <QRegularExpression>

namespace Userflux {

bool isValidRunId(const QString &id)
{
    // anchoredPattern: "$" alone would also match before a trailing newline.
    static const QRegularExpression re(QRegularExpression::anchoredPattern(QStringLiteral("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")));
    if (id == QLatin1String(".") || id == QLatin1String(".."))
        return false;
    return re.match(id).hasMatch();
}

QString generateRunId()
{
    const QString stamp = QDateTime::currentDateTimeUtc().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    const quint32 suffix = QRandomGenerator::system()->bounded(0x10000u);
    return stamp + QLatin1Char('-') + QStringLiteral("%1").arg(suffix, 4, 16, QLatin1Char('0'));
}

} // namespace Userflux
