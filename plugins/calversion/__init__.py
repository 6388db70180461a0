from almatools import TaskSource, builtin_xml, hookimpl


def calversion(path):
    return {"path": path}


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("calversion"), impl=calversion)]
