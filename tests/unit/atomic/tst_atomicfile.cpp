// writeFileAtomically / appendToFile (every contract file is written atomically) and run ids (validation,
// sortable and unique generation).
#include "userflux/atomicfile.h"
#include "userflux/runid.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QRegularExpression>
#include <QSet>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include <atomic>
#include <thread>

using namespace Userflux;

namespace {

QByteArray readAll(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

} // namespace

class TestAtomicFile : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void writeCreatesAndReplaces()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("status.json"));
        QVERIFY(writeFileAtomically(path, "first").ok());
        QCOMPARE(readAll(path), QByteArray("first"));
        QVERIFY(writeFileAtomically(path, "second, longer").ok());
        QCOMPARE(readAll(path), QByteArray("second, longer"));
        QVERIFY(writeFileAtomically(path, "3").ok());
        QCOMPARE(readAll(path), QByteArray("3"));
        QVERIFY(writeFileAtomically(path, QByteArray()).ok());
        QCOMPARE(readAll(path), QByteArray());
        // No temporary file is left beside the target.
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot),
                 QStringList{QStringLiteral("status.json")});
    }

    void writeIntoMissingFolderFails()
    {
        QTemporaryDir dir;
        Result<void> r = writeFileAtomically(dir.filePath(QStringLiteral("missing/status.json")), "x");
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code, QStringLiteral("io"));
        QVERIFY(r.error().message.contains(QStringLiteral("missing/status.json")));
    }

    // A reader polling the file while another thread rewrites it sees either the old or the new content,
    // whole, never a mix nor a truncated file.
    void readerNeverSeesPartialFile()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("summary.json"));
        const QByteArray a(1 << 20, 'a');       // 1 MiB
        const QByteArray b(3 << 19, 'b');       // 1.5 MiB
        QVERIFY(writeFileAtomically(path, a).ok());

        std::atomic<bool> stop{false};
        std::atomic<int> writes{0};
        std::atomic<bool> writeFailed{false};
        std::thread writer([&] {
            while (!stop.load()) {
                const QByteArray &data = (writes.load() % 2) ? a : b;
                if (!writeFileAtomically(path, data).ok())
                    writeFailed = true;
                ++writes;
            }
        });

        QElapsedTimer timer;
        timer.start();
        int reads = 0;
        int bad = 0;
        while (timer.elapsed() < 3000 && (reads < 300 || writes.load() < 20)) {
            const QByteArray seen = readAll(path);
            const bool whole = seen == a || seen == b;
            if (!whole)
                ++bad;
            ++reads;
        }
        stop = true;
        writer.join();
        QVERIFY(!writeFailed.load());
        QVERIFY2(writes.load() > 2, "the writer made progress");
        QCOMPARE(bad, 0);
        const QStringList left = QDir(dir.path()).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot);
        QCOMPARE(left, QStringList{QStringLiteral("summary.json")});
    }

    void appendAddsWholeLines()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("timeseries.ndjson"));
        QVERIFY(appendToFile(path, "{\"t_s\":0}\n").ok());
        QVERIFY(appendToFile(path, "{\"t_s\":1}\n{\"t_s\":2}\n").ok());
        QCOMPARE(readAll(path), QByteArray("{\"t_s\":0}\n{\"t_s\":1}\n{\"t_s\":2}\n"));
        QVERIFY(!appendToFile(dir.filePath(QStringLiteral("missing/x.ndjson")), "x\n").ok());
    }

    void runIdValidation_data()
    {
        QTest::addColumn<QString>("id");
        QTest::addColumn<bool>("valid");
        QTest::newRow("generated form") << QStringLiteral("20261203-180102-4f2a") << true;
        QTest::newRow("one char") << QStringLiteral("a") << true;
        QTest::newRow("64 chars") << QString(64, QLatin1Char('x')) << true;
        QTest::newRow("dots inside") << QStringLiteral("a.b..c") << true;
        QTest::newRow("underscore dash") << QStringLiteral("A_b-9") << true;
        QTest::newRow("empty") << QString() << false;
        QTest::newRow("dot") << QStringLiteral(".") << false;
        QTest::newRow("dotdot") << QStringLiteral("..") << false;
        QTest::newRow("hidden") << QStringLiteral(".hidden") << false;
        QTest::newRow("slash") << QStringLiteral("a/b") << false;
        QTest::newRow("backslash") << QStringLiteral("a\\b") << false;
        QTest::newRow("65 chars") << QString(65, QLatin1Char('x')) << false;
        QTest::newRow("space") << QStringLiteral("a b") << false;
        QTest::newRow("leading dash") << QStringLiteral("-a") << false;
        QTest::newRow("newline") << QStringLiteral("a\n") << false;
        QTest::newRow("nul") << QStringLiteral("a") + QChar(0) << false;
        QTest::newRow("non-ascii") << QStringLiteral("r\u00e9sultat") << false;
        QTest::newRow("percent") << QStringLiteral("a%2Fb") << false;
    }

    void runIdValidation()
    {
        QFETCH(QString, id);
        QFETCH(bool, valid);
        QCOMPARE(isValidRunId(id), valid);
    }

    void generatedIdsAreValidAndShaped()
    {
        static const QRegularExpression shape(QStringLiteral("^\\d{8}-\\d{6}-[0-9a-f]{4}$"));
        for (int i = 0; i < 50; ++i) {
            const QString id = generateRunId();
            QVERIFY2(isValidRunId(id), qPrintable(id));
            QVERIFY2(shape.match(id).hasMatch(), qPrintable(id));
        }
    }

    void generatedIdsSortByTime()
    {
        const QString first = generateRunId();
        QThread::msleep(1100); // the time part has a one-second resolution
        const QString second = generateRunId();
        QVERIFY2(first < second, qPrintable(first + QStringLiteral(" vs ") + second));
        QVERIFY(first.left(15) < second.left(15));
    }

    void generatedIdsAreUnique()
    {
        // The random suffix separates ids created in the same second; RunStore::createRun() resolves the rare
        // collision with mkdir(2) (see tst_runstore). Here: distinct in practice.
        QSet<QString> ids;
        for (int i = 0; i < 100; ++i)
            ids.insert(generateRunId());
        QVERIFY2(ids.size() >= 95, qPrintable(QString::number(ids.size())));
    }
};

QTEST_GUILESS_MAIN(TestAtomicFile)
#include "tst_atomicfile.moc"
