"""Alembic environment: runs migrations on the engine mailroom hands over."""

from typing import Any

from alembic import context

from mailroom.store.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    driver: Any = connection.connection.driver_connection
    if sqlite:  # all DDL in one transaction (store.db begins it), keys off: tables are rebuilt
        connection.commit()
        driver.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or it is ignored
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=True)
        before = context.get_context().get_current_heads()
        with context.begin_transaction():
            if not sqlite:  # of two upgrades at once ("schm"), the second waits, finds nothing
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1935894637, 0)")
            context.run_migrations()
        if sqlite and context.get_context().get_current_heads() != before:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"a migration broke foreign keys: {broken[:5]}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        if sqlite:
            driver.execute("PRAGMA foreign_keys=ON")
