#include "userflux/atomicfile.h"

#include <QFile>
#include <QSaveFile>

namespace Userflux {

Result<void> writeFileAtomically(const QString &path, const QByteArray &data)
{
    // QSaveFile writes to a temporary file beside the target and renames it on commit(): atomic on POSIX.
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        return Error{"io", QStringLiteral("cannot write %1: %2").arg(path, file.errorString())};
    if (file.write(data) != data.size()) {
        file.cancelWriting();
        return Error{"io", QStringLiteral("cannot write %1: %2").arg(path, file.errorString())};
    }
    if (!file.commit())
        return Error{"io", QStringLiteral("cannot write %1: %2").arg(path, file.errorString())};
    return {};
}

Result<void> appendToFile(const QString &path, const QByteArray &lines)
{
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Append))
        return Error{"io", QStringLiteral("cannot append to %1: %2").arg(path, file.errorString())};
    if (file.write(lines) != lines.size())
        return Error{"io", QStringLiteral("cannot append to %1: %2").arg(path, file.errorString())};
    return {};
}

} // namespace Userflux
