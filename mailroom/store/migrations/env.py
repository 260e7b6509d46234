"""Alembic environment: runs migrations on the engine mailroom hands over."""

from typing import Any

from alembic import context

from mailroom.store.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    driver: Any = connection.connection.driver_connection
    level = driver.isolation_level if sqlite else None
    if sqlite:  # all DDL in one real transaction, keys off: batch mode rebuilds tables
        connection.commit()
        driver.isolation_level = None
        driver.execute("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("BEGIN")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=True)
        before = context.get_context().get_current_heads()
        with context.begin_transaction():
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
            driver.isolation_level = level
