"""nbgrader's CheckCellMetadata, with the metadata schema checked once rather than per cell.

nbgrader validates each cell's ``nbgrader`` metadata with ``jsonschema.validate``, which
first checks the schema itself against its meta-schema, every time: about a quarter of a
second of CPU per student here (two notebooks, each checked in both pipelines), for a
schema that never changes. The checks are nbgrader's own; only the schema's validator is
built once and kept. Pinned with nbgrader (``nbgrader.nbgraderformat.common``'s
``validate_cell`` is what this replaces).
"""

from __future__ import annotations

import traceback
from typing import Any

import jsonschema
from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import (
    BaseMetadataValidator,
    SchemaTooNewError,
    SchemaTooOldError,
)
from nbgrader.preprocessors import CheckCellMetadata

_VALIDATORS: dict[int, Any] = {}  # nbgrader schema version -> its jsonschema validator


def _schema_validator(version: int, schema: dict[str, Any]) -> Any:
    if version not in _VALIDATORS:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)  # what jsonschema.validate does on every call: here once
        _VALIDATORS[version] = cls(schema)
    return _VALIDATORS[version]


class _SchemaCheckedOnce(BaseMetadataValidator):
    """The common part of nbgrader's validate_cell (schema version, then the schema)."""

    def validate_cell(self, cell: NotebookNode) -> None:
        if "nbgrader" not in cell.metadata:
            return
        schema = cell.metadata["nbgrader"].get("schema_version", 0)
        if schema < self.schema_version:
            raise SchemaTooOldError(
                f"Outdated schema version: {schema} (expected {self.schema_version})",
                schema,
                self.schema_version,
            )
        if schema > self.schema_version:
            raise SchemaTooNewError(
                f"Schema version is too new: {schema} (expected {self.schema_version})",
                schema,
                self.schema_version,
            )
        validator = _schema_validator(self.schema_version, self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(cell.metadata["nbgrader"]))
        if error is not None:  # the error jsonschema.validate would raise
            raise error


class FastMetadataValidator(MetadataValidator, _SchemaCheckedOnce):
    """nbgrader's current MetadataValidator; its ``super().validate_cell`` lands on
    :class:`_SchemaCheckedOnce` (next in this class's MRO) instead of nbgrader's base."""


class CheckCellMetadataFast(CheckCellMetadata):
    """CheckCellMetadata with :class:`FastMetadataValidator`; same errors, same log."""

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        try:
            FastMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources
