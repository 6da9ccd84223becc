"""The email view as a user meets it, without a model: expanding a smart reply starts from that reply, a
refinement that changed nothing says so, "Open in mail app" without a mail app says so and offers the .eml, and the
.eml carries a date and the addresses that are known."""
import email
import email.policy

import pytest

from wren.gui import mail, views
from wren.gui.views import EmailView

pytestmark = pytest.mark.gui

PRIYA = "From: Priya Shah <priya@example.org>\nTo: Ana <ana@example.org>\n\nCan you review my pull request today?"


def test_expand_starts_from_the_reply_not_the_last_draft(qtbot):
    v = EmailView()
    qtbot.addWidget(v)
    v.to.setText("Dana")
    v.tone.setCurrentText("Formal")
    v.length.setCurrentText("Long")
    v.show_draft("Quarterly report", "Dear Dana, ...")
    v.start_reply("Sure, I'll review it today.", "Can you review my pull request today?\n\nThanks,\nPriya")
    assert v.to.text() == "Priya"
    assert v.tone.currentText() == "Neutral" and v.length.currentText() == "Short"
    assert v.points.toPlainText() == "Sure, I'll review it today."
    assert v.thread.toPlainText().startswith("Can you review")
    assert v.subject.text() == "" and v.body.toPlainText() == ""
    v.start_reply("Yes.", "Lunch?")  # no sender known: no recipient kept from before
    assert v.to.text() == ""


def test_a_refinement_that_changed_nothing_says_so(qtbot):
    v = EmailView()
    qtbot.addWidget(v)
    v.show_draft("Lunch", "Hi Sam,\nNoon works.")
    with qtbot.waitSignal(v.refineRequested):
        v.refine.menu().actions()[0].trigger()
    v.show_draft("Lunch", "Hi Sam,\nNoon works.")
    assert "unchanged" in v.note.text()
    v.refine.menu().actions()[0].trigger()
    v.show_draft("Lunch", "Hi Sam, noon.")
    assert "unchanged" not in v.note.text()


def test_open_in_mail_app_without_one_says_so_and_offers_the_eml(qtbot, monkeypatch, tmp_path):
    v = EmailView()
    qtbot.addWidget(v)
    v.show_draft("Lunch", "Hi Sam,\nNoon works.")
    opened, asked, saved = [], [], []
    monkeypatch.setattr(mail, "app_available", lambda: False)
    monkeypatch.setattr(views.QDesktopServices, "openUrl", lambda url: opened.append(url) or False)
    monkeypatch.setattr(views.QMessageBox, "question",
                        lambda *a, **k: asked.append(a) or views.QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(v, "_save_dialog", lambda: saved.append(True))
    v.mailto.click()
    assert not opened and asked and saved
    assert "no mail app" in v.note.text().lower()


def test_eml_has_a_date_and_the_known_addresses(qtbot, tmp_path):
    v = EmailView()
    qtbot.addWidget(v)
    v.start_reply("Sure, today.", PRIYA)
    v.show_draft("Re: pull request", "Hi Priya,\nSure, today.\nAna")
    path = tmp_path / "x.eml"
    v.save_eml(path)
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg["Date"] and msg["Subject"] == "Re: pull request"
    assert msg["To"] == "Priya Shah <priya@example.org>" and msg["From"] == "Ana <ana@example.org>"
    assert msg.get_content().startswith("Hi Priya")


def test_an_answer_stopped_by_the_repetition_guard_says_so():
    from wren.engine.engine import Stats
    from wren.gui.status import speed_text

    st = Stats(prompt_tokens=20, generated_tokens=90, prefill_seconds=0.1, decode_seconds=1.0, ttft_seconds=0.1,
               finish_reason="repetition")
    assert "repeating itself" in speed_text(st)


def refine(qtbot, v, subject, body, how=0):
    """The user picks a refinement from the menu; the model gives back subject and body."""
    with qtbot.waitSignal(v.refineRequested):
        v.refine.menu().actions()[how].trigger()
    v.show_draft(subject, body)


def test_a_refinement_can_be_undone_and_redone(qtbot):
    from PySide6.QtCore import Qt

    v = EmailView()
    qtbot.addWidget(v)
    v.show()
    v.show_draft("Lunch", "Hi Sam,\nNoon works for me, see you there.")
    assert not v.undo.isEnabled() and not v.redo.isEnabled()
    refine(qtbot, v, "Lunch", "Hi Sam, noon.")
    assert "Undo" in v.note.text() and v.undo.isEnabled() and not v.redo.isEnabled()
    v.body.setFocus()
    qtbot.keyClick(v.body, Qt.Key_Z, Qt.ControlModifier)  # nothing typed in the body: the refinement is undone
    assert (v.subject.text(), v.body.toPlainText()) == ("Lunch", "Hi Sam,\nNoon works for me, see you there.")
    assert v.redo.isEnabled() and not v.undo.isEnabled()
    qtbot.keyClick(v.body, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # and redone
    assert v.body.toPlainText() == "Hi Sam, noon."
    qtbot.keyClicks(v.body, " Ana")  # typing in the refined version: Ctrl+Z undoes the typing first
    qtbot.keyClick(v.body, Qt.Key_Z, Qt.ControlModifier)
    assert v.body.toPlainText() != "Hi Sam,\nNoon works for me, see you there."
    v.body.setPlainText("Hi Sam, noon. Ana")
    v.undo.click()
    assert v.body.toPlainText().startswith("Hi Sam,\nNoon works")
    v.redo.click()
    assert v.body.toPlainText() == "Hi Sam, noon. Ana"  # the edit stayed with its version
    v.undo.click()
    refine(qtbot, v, "Lunch", "Dear Sam, noon suits me well.", how=2)  # from the first version: the rest is left
    assert len(v.versions) == 2 and not v.redo.isEnabled()
    request, output = v.state()
    w = EmailView()
    qtbot.addWidget(w)
    w.restore(request, output)  # reopened from the history: the versions come back too
    assert w.body.toPlainText() == "Dear Sam, noon suits me well." and w.undo.isEnabled()
    w.undo.click()
    assert w.body.toPlainText().startswith("Hi Sam,\nNoon works")
    v.set_busy(True)
    assert not v.undo.isEnabled()
    v.show_draft("Other", "A new draft starts a new history.")
    v.set_busy(False)
    assert v.versions == [["Other", "A new draft starts a new history."]] and not v.undo.isEnabled()
