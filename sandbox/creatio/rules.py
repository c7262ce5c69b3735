"""Entity-level save rules of the schema: required columns and object save scripts.

They run on every OData create and update (single requests and ``$batch`` alike), after the
written values are type-checked and before anything is stored. Direct inserts (seed rows,
``CreatioApp.insert``) are writes straight into the database and skip them.

Inferred: how a real site answers either refusal. The reference documents no answer for them;
the sandbox sends the 500 "An error has occurred." shape of reference section 2.9 (an exception
thrown while Creatio saves the entity), with the text in ``innererror`` and
``internalexception``, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Collection

from sandbox.creatio.errors import ODataError, server_error
from sandbox.creatio.schema import Entity, Model
from sandbox.creatio.store import Row, Table
from sandbox.creatio.values import DEFAULTS


def is_empty(kind: str, value: object) -> bool:
    """Whether a stored value is the column type's empty value ("" or the all-zero GUID...)."""
    return kind not in ("bool", "int") and value == DEFAULTS[kind]


class SaveRules:
    """Checks writes against the model's required columns and save scripts.

    Args:
        model: The schema whose ``Entity.required`` and ``Entity.unique_on_save`` apply.
        save_scripts: Run the objects' save scripts (the ``WSysAccount`` check that no other
            record has the same ``Login`` or ``Contact``); ``False`` skips them.
    """

    def __init__(self, model: Model, *, save_scripts: bool = True) -> None:
        self.entities = model.entities
        self.save_scripts = save_scripts

    def check_create(self, table: Table, row: Row) -> None:
        """Refuse a new complete stored ``row`` that breaks a rule.

        Raises:
            ODataError: 500 naming the rule broken.
        """
        entity = self.entities[table.name]
        self._required(table, entity, row, entity.required)
        self._save_script(table, entity, row)

    def check_update(self, table: Table, row: Row, changes: Row) -> None:
        """Refuse ``changes`` (stored forms) to the existing ``row`` if the result breaks a rule.

        Only the required columns the update writes are checked: a row stored empty by a
        direct insert can still be updated in its other columns.

        Raises:
            ODataError: 500 naming the rule broken.
        """
        entity = self.entities[table.name]
        self._required(table, entity, changes, entity.required & changes.keys())
        # The save script runs on every save and sees the whole record, changed or not.
        self._save_script(table, entity, {**row, **changes})

    def _required(self, table: Table, entity: Entity, values: Row, columns: Collection[str]) -> None:
        # Decision: columns are checked in schema order, so the message names the first one.
        for column in table.columns:
            if column in columns and is_empty(table.columns[column], values[column]):
                # Inferred: status and body (see the module docstring); the text is the sandbox's.
                raise server_error(f'Column "{column}" of object "{entity.name}" is required, '
                                   "but no value was given.")

    def _save_script(self, table: Table, entity: Entity, row: Row) -> None:
        if not self.save_scripts or not entity.unique_on_save:
            return
        for column in entity.unique_on_save:
            value = row[column]
            if is_empty(table.columns[column], value):
                continue  # an empty lookup is NULL in the database: it equals nothing
            # The script excludes the record itself by Id, so a retried create with the same Id
            # passes here and meets the primary key instead.
            if table.holders(column, value) - {row["Id"]}:
                raise _script_refusal(entity, column)


def _script_refusal(entity: Entity, column: str) -> ODataError:
    # Inferred: the WSysAccount script (reference section 4.1) only computes "no other record has
    # this Login or Contact"; the shipped process then skips the base saving handlers, and no
    # public source shows what an OData client receives. The sandbox refuses the save with the
    # 500 shape of section 2.9 (turn it off with CreatioApp(save_scripts=False)).
    columns = " or ".join(entity.unique_on_save)
    return server_error(f'{entity.name} was not saved: another {entity.name} record has the same {columns} '
                        f'(clash on "{column}").')
