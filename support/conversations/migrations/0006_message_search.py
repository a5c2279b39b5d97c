"""Full-text search over messages (support.conversations.search).

PostgreSQL: a GIN index on to_tsvector('english', text), the expression the queue searches with
(Django's SearchVector wraps the column in COALESCE, so the index does too).

SQLite: an FTS5 table with the messages' text as its external content, filled from the rows already there
and kept in step by triggers. A later migration that makes SQLite remake conversations_message (Django
copies the table to alter some columns) drops these triggers with the old table: it must run
create_sqlite_triggers again.
"""

from django.db import migrations

INDEX = "conversations_message_text_search"
FTS = "conversations_message_fts"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {FTS}_insert AFTER INSERT ON conversations_message BEGIN
        INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {FTS}_delete AFTER DELETE ON conversations_message BEGIN
        INSERT INTO {FTS}({FTS}, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {FTS}_update AFTER UPDATE OF id, text ON conversations_message BEGIN
        INSERT INTO {FTS}({FTS}, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text);
    END""",
]


def create_sqlite_triggers(schema_editor):
    for statement in SQLITE_TRIGGERS:
        schema_editor.execute(statement)


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON conversations_message "
            "USING gin (to_tsvector('english'::regconfig, COALESCE(text, '')))"
        )
    elif vendor == "sqlite":
        schema_editor.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(text, content='conversations_message', "
            "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
        )
        create_sqlite_triggers(schema_editor)
        # The messages already there.
        schema_editor.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    elif vendor == "sqlite":
        for name in ("insert", "delete", "update"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {FTS}_{name}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {FTS}")


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0005_draft_review"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
