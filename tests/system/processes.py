"""The small processes the system tests deploy (laneless tasks are the dpo's)."""

from __future__ import annotations

from pathlib import Path

from tests.bpmn import chain, document, service_task, timer_catch, user_task

DATA = Path(__file__).parent.parent / "data"

# start -> work -> check -> end: completing "work" advances the instance once.
TWO_TASKS = document(chain("sys_two_tasks", user_task("work"), user_task("check")))
# start -> wait for payment_received (correlated on order_id) -> ship -> end.
ORDER = (DATA / "order_payment.bpmn").read_bytes()


# start -> a legal deadline at the instance's `due` -> answer -> end: left
# unanswered, the deadline is missed and the dpo hears it once (deadline.missed).
LEGAL_DEADLINE = document(
    chain(
        "sys_deadline",
        service_task(
            "set_deadline",
            "deadlines.set",
            name='"answer"',
            due_at="due",
            article='"Art 12(3)"',
        ),
        user_task("answer"),
    )
)


def _race(seconds: int) -> bytes:
    return f"""<bpmn:process id="sys_race" isExecutable="true">
<bpmn:startEvent id="start" />
<bpmn:userTask id="work" name="work" />
<bpmn:boundaryEvent id="too_late" attachedToRef="work"><bpmn:timerEventDefinition>
<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT{seconds}S"</bpmn:timeDuration>
</bpmn:timerEventDefinition></bpmn:boundaryEvent>
<bpmn:userTask id="late" name="late" />
<bpmn:endEvent id="done" /><bpmn:endEvent id="end_late" />
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="done" />
<bpmn:sequenceFlow id="f3" sourceRef="too_late" targetRef="late" />
<bpmn:sequenceFlow id="f4" sourceRef="late" targetRef="end_late" />
</bpmn:process>"""


def race_process(seconds: int) -> bytes:
    """start -> work (a timer of `seconds` on it leads to "late") -> end."""
    return document(_race(seconds))


def timer_process(seconds: int) -> bytes:
    """start -> a timer of `seconds` -> after -> end."""
    return document(
        chain("sys_timer", timer_catch("pause", f'"PT{seconds}S"'), user_task("after"))
    )


def files(timer_seconds: int = 3) -> dict[str, bytes]:
    return {
        "sys_two_tasks.bpmn": TWO_TASKS,
        "order_payment.bpmn": ORDER,
        "sys_timer.bpmn": timer_process(timer_seconds),
        "sys_deadline.bpmn": LEGAL_DEADLINE,
        "sys_race.bpmn": race_process(timer_seconds + 2),
    }
