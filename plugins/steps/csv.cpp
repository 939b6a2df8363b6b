#include "csv.h"

#include <QFile>

namespace Userflux::Plugins {

Result<CsvTable> parseCsv(const QByteArray &bytes)
{
    const QString data = QString::fromUtf8(bytes);
    std::vector<QStringList> records;
    QStringList record;
    QString field;
    bool quoted = false, fieldStarted = false;
    int line = 1, quoteLine = 1;
    for (qsizetype i = 0; i < data.size(); ++i) {
        const QChar ch = data[i];
        if (quoted) {
            if (ch == QLatin1Char('"')) {
                if (i + 1 < data.size() && data[i + 1] == QLatin1Char('"')) {
                    field += QLatin1Char('"');
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                if (ch == QLatin1Char('\n'))
                    ++line;
                field += ch;
            }
            continue;
        }
        if (ch == QLatin1Char('"') && !fieldStarted) {
            quoted = true;
            quoteLine = line;
            fieldStarted = true;
        } else if (ch == QLatin1Char(',')) {
            record << field;
            field.clear();
            fieldStarted = false;
        } else if (ch == QLatin1Char('\n') || ch == QLatin1Char('\r')) {
            if (ch == QLatin1Char('\r') && i + 1 < data.size() && data[i + 1] == QLatin1Char('\n'))
                ++i;
            record << field;
            field.clear();
            fieldStarted = false;
            if (!(record.size() == 1 && record[0].isEmpty()))
                records.push_back(record);
            record.clear();
            ++line;
        } else {
            field += ch;
            fieldStarted = true;
        }
    }
    if (quoted)
        return Error{QStringLiteral("csv"), QStringLiteral("line %1: a quoted field is not closed").arg(quoteLine)};
    if (fieldStarted || !record.isEmpty()) {
        record << field;
        records.push_back(record);
    }
    if (records.empty())
        return Error{QStringLiteral("csv"), QStringLiteral("no header row")};
    CsvTable t;
    for (const QString &c : records[0]) {
        const QString name = c.trimmed();
        if (name.isEmpty())
            return Error{QStringLiteral("csv"), QStringLiteral("the header has an empty column name")};
        if (t.columns.contains(name))
            return Error{QStringLiteral("csv"), QStringLiteral("column \"%1\" appears twice in the header").arg(name)};
        t.columns << name;
    }
    for (size_t r = 1; r < records.size(); ++r) {
        if (records[r].size() != t.columns.size())
            return Error{QStringLiteral("csv"), QStringLiteral("row %1 has %2 fields, the header has %3")
                                                    .arg(r + 1).arg(records[r].size()).arg(t.columns.size())};
        t.rows.push_back(records[r]);
    }
    if (t.rows.empty())
        return Error{QStringLiteral("csv"), QStringLiteral("no data rows after the header")};
    return t;
}

Result<CsvTable> readCsvFile(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return Error{QStringLiteral("io"), QStringLiteral("cannot read %1: %2").arg(path, f.errorString())};
    auto t = parseCsv(f.readAll());
    if (!t)
        return Error{t.error().code, QStringLiteral("%1: %2").arg(path, t.error().message)};
    return t;
}

} // namespace Userflux::Plugins
