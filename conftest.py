"""pytest glue for Tryton's doctest scenarios (tests/scenario_*.rst).

Tryton runs them with unittest's load_tests, which pytest ignores; this
collects each scenario file as one test with Tryton's doctest settings.
"""
import doctest
import unittest

import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == '.rst' and file_path.name.startswith('scenario'):
        return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self):
        yield ScenarioItem.from_parent(self, name=self.path.name)


class ScenarioItem(pytest.Item):
    def runtest(self):
        from trytond.tests.test_tryton import (
            doctest_checker, doctest_setup, doctest_teardown)
        suite = doctest.DocFileSuite(
            str(self.path), module_relative=False,
            setUp=doctest_setup, tearDown=doctest_teardown,
            encoding='utf-8', checker=doctest_checker,
            optionflags=doctest.REPORT_ONLY_FIRST_FAILURE
            | doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        result = unittest.TestResult()
        suite.run(result)
        problems = result.failures + result.errors
        if problems:
            raise ScenarioFailure('\n'.join(text for _, text in problems))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, 'scenario: %s' % self.name


class ScenarioFailure(Exception):
    pass
