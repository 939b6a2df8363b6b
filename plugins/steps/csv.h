#pragma once
#include <userflux/result.h>

#include <QString>
#include <QStringList>
#include <vector>

namespace Userflux::Plugins {

// A CSV data file: a header row naming the columns, then rows (RFC 4180 quoting: "a,b", "say ""hi""").
struct CsvTable {
    QStringList columns;
    std::vector<QStringList> rows;
};

Result<CsvTable> parseCsv(const QByteArray &data);
Result<CsvTable> readCsvFile(const QString &path);

} // namespace Userflux::Plugins
