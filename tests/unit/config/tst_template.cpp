// "{{var}}" templates: compile errors, rendering, missing variables.
#include <userflux/template.h>

#include <QTest>

using namespace Userflux;

class TestTemplate : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void rendersVariables()
    {
        auto t = Template::compile(QStringLiteral("/api/users/{{ row.user }}/items?vu={{vu}}&i={{iter}}&again={{vu}}"));
        QVERIFY(t);
        QCOMPARE(t->variables(), QStringList({"row.user", "vu", "iter"}));
        QVERIFY(!t->isConstant());
        const QString out = t->render([](const QString &n) -> std::optional<QString> {
            if (n == "vu") return QStringLiteral("7");
            if (n == "iter") return QStringLiteral("31");
            if (n == "row.user") return QStringLiteral("alice");
            return std::nullopt;
        });
        QCOMPARE(out, QStringLiteral("/api/users/alice/items?vu=7&i=31&again=7"));
    }

    void constantTextIsUntouched()
    {
        auto t = Template::compile(QStringLiteral("plain {text} } {"));
        QVERIFY(t);
        QVERIFY(t->isConstant());
        QCOMPARE(t->render([](const QString &) { return std::optional<QString>(); }), QStringLiteral("plain {text} } {"));
    }

    void missingVariablesRenderEmptyAndAreReported()
    {
        auto t = Template::compile(QStringLiteral("Bearer {{token}}"));
        QVERIFY(t);
        QStringList missing;
        QCOMPARE(t->render([](const QString &) { return std::optional<QString>(); }, &missing), QStringLiteral("Bearer "));
        QCOMPARE(missing, QStringList({"token"}));
    }

    void compileErrors_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("unclosed") << "a {{vu" << "no closing";
        QTest::newRow("empty") << "a {{ }}" << "not a variable name";
        QTest::newRow("bad name") << "{{1abc}}" << "not a variable name";
        QTest::newRow("expression") << "{{vu + 1}}" << "not a variable name";
    }
    void compileErrors()
    {
        QFETCH(QString, text);
        QFETCH(QString, fragment);
        auto t = Template::compile(text);
        QVERIFY(!t);
        QVERIFY2(t.error().message.contains(fragment), qPrintable(t.error().message));
    }
};

QTEST_GUILESS_MAIN(TestTemplate)
#include "tst_template.moc"
