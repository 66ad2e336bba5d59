import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BroadcastQuestions, PendingQuestions } from '../../src/cluster/rpc.js';

describe('one question, one answer (a worker asking the primary)', () => {
  it('each question settles with the answer given to its own id', async () => {
    const questions = new PendingQuestions<string>();
    const sent: number[] = [];
    const first = questions.ask((id) => sent.push(id), 10_000, 'nobody');
    const second = questions.ask((id) => sent.push(id), 10_000, 'nobody');
    assert.notEqual(sent[0], sent[1]);
    questions.answered(sent[1]!, 'b');
    questions.answered(sent[0]!, 'a');
    assert.deepEqual(await Promise.all([first, second]), ['a', 'b']);
  });

  it('an unanswered question settles with the fallback after the wait; a late answer is ignored', async () => {
    const questions = new PendingQuestions<string>();
    let id = 0;
    const asked = questions.ask((given) => (id = given), 5, 'nobody');
    assert.equal(await asked, 'nobody');
    questions.answered(id, 'too late');
    questions.answered(id + 1, 'never asked');
  });

  it('settleAll answers every waiting question at once (the channel closed)', async () => {
    const questions = new PendingQuestions<string | null>();
    const asked = [questions.ask(() => {}, 10_000, 'timeout'), questions.ask(() => {}, 10_000, 'timeout')];
    questions.settleAll(null);
    assert.deepEqual(await Promise.all(asked), [null, null]);
  });
});

describe('one question to every worker, answers collected (the primary asking)', () => {
  it('settles as soon as every peer answered, with each answer once', async () => {
    const questions = new BroadcastQuestions<string, number>();
    const sent: Array<[string, number]> = [];
    const asked = questions.ask(['w1', 'w2'], (peer, id) => sent.push([peer, id]), 10_000);
    const [[, id]] = sent as [[string, number]];
    questions.answered('w1', id, 1);
    questions.answered('w1', id, 1);
    questions.answered('w3', id, 3);
    questions.answered('w2', id, 2);
    const { answers, late } = await asked;
    assert.deepEqual(answers.sort(), [1, 2]);
    assert.equal(late.size, 0);
  });

  it('a peer that goes away is not waited for, and is not late', async () => {
    const questions = new BroadcastQuestions<string, number>();
    let id = 0;
    const asked = questions.ask(['w1', 'w2'], (_, given) => (id = given), 10_000);
    questions.answered('w1', id, 1);
    questions.gone('w2');
    assert.deepEqual(await asked, { answers: [1], late: new Set() });
  });

  it('a peer that does not answer in time is named late, and the others still count', async () => {
    const questions = new BroadcastQuestions<string, number>();
    let id = 0;
    const asked = questions.ask(['w1', 'w2'], (_, given) => (id = given), 5);
    questions.answered('w1', id, 1);
    assert.deepEqual(await asked, { answers: [1], late: new Set(['w2']) });
  });

  it('no peer at all settles at once', async () => {
    const questions = new BroadcastQuestions<string, number>();
    assert.deepEqual(await questions.ask([], () => assert.fail('nobody to send to'), 10_000), { answers: [], late: new Set() });
  });
});
