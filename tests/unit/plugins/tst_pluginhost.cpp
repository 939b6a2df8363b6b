// The plugin host: metadata read before loading, incompatible plugins refused by name and reason, lookups.
#include <userflux/pluginhost.h>

#include <QTest>

using namespace Userflux;

class TestPluginHost : public QObject {
    Q_OBJECT

    static const PluginInfo *find(const PluginHost &host, const QString &id)
    {
        for (const PluginInfo &p : host.plugins())
            if (p.id == id)
                return &p;
        return nullptr;
    }

private Q_SLOTS:
    void findsTheShippedPlugins()
    {
        PluginHost host({QStringLiteral(USERFLUX_TEST_PLUGIN_DIR)});
        for (const auto &[id, kind] : {std::pair{"http", "protocol"}, {"steps", "scenario"}, {"file", "sink"}}) {
            const PluginInfo *p = find(host, QString::fromLatin1(id));
            QVERIFY2(p, id);
            QCOMPARE(p->kind, QString::fromLatin1(kind));
            QVERIFY2(p->usable, qPrintable(p->problem));
            QCOMPARE(p->apiVersion, PluginApiVersion);
            QVERIFY(!p->version.isEmpty());
        }
        QVERIFY(host.protocol("http"));
        QVERIFY(host.scenario("steps"));
        QVERIFY(host.sink("file"));
    }

    void refusesIncompatiblePluginsByNameAndReason()
    {
        PluginHost host({QStringLiteral(USERFLUX_TEST_FIXTURE_PLUGIN_DIR), QStringLiteral(USERFLUX_TEST_PLUGIN_DIR)});
        const PluginInfo *future = find(host, "futuresink");
        QVERIFY(future);
        QVERIFY(!future->usable);
        QVERIFY2(future->problem.contains("plugin API 99") && future->problem.contains("API 1"), qPrintable(future->problem));
        auto r = host.sink("futuresink");
        QVERIFY(!r);
        QCOMPARE(r.error().code, QStringLiteral("unusable"));
        QVERIFY(r.error().message.contains("futuresink"));

        const PluginInfo *mystery = find(host, "mystery");
        QVERIFY(mystery);
        QVERIFY(!mystery->usable);
        QVERIFY2(mystery->problem.contains("kind"), qPrintable(mystery->problem));
        // The good plugins beside them are unaffected.
        QVERIFY(host.sink("file"));
    }

    void unknownIdListsWhatIsAvailable()
    {
        PluginHost host({QStringLiteral(USERFLUX_TEST_PLUGIN_DIR)});
        auto r = host.protocol("gopher");
        QVERIFY(!r);
        QCOMPARE(r.error().code, QStringLiteral("not_found"));
        QVERIFY2(r.error().message.contains("available: http"), qPrintable(r.error().message));
    }
};

QTEST_GUILESS_MAIN(TestPluginHost)
#include "tst_pluginhost.moc"
