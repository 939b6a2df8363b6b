// placeholder while the test is being written
#include <QtTest>
class TestDaemonApi : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void placeholder() { QSKIP("being written"); }
};
QTEST_GUILESS_MAIN(TestDaemonApi)
#include "tst_daemon_api.moc"
