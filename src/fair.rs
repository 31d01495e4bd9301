//! Work taken in turns per tenant, so one tenant's storm cannot queue the others: the
//! group-commit writer takes append requests this way, and each hub shard its fan-outs.
//!
//! Each tenant has a queue of its own, kept in order; the tenants with work wait in a
//! line, and the one whose turn it is goes to the back of it after its turn if it has
//! work left.

use std::collections::{HashMap, VecDeque};

pub struct Turns<T> {
    queues: HashMap<i64, VecDeque<T>>,
    line: VecDeque<i64>,
    len: usize,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            line: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Turns<T> {
    /// Adds work for `tenant_id`, after its earlier work; returns how much it has waiting.
    pub fn push(&mut self, tenant_id: i64, item: T) -> usize {
        let queue = self.queues.entry(tenant_id).or_default();
        if queue.is_empty() {
            self.line.push_back(tenant_id);
        }
        queue.push_back(item);
        self.len += 1;
        queue.len()
    }

    /// Drops all of `tenant_id`'s work.
    pub fn remove(&mut self, tenant_id: i64) {
        if let Some(queue) = self.queues.remove(&tenant_id) {
            self.len -= queue.len();
            self.line.retain(|&t| t != tenant_id);
        }
    }

    /// Items waiting, all tenants together.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the front item of the tenant whose turn it is, who goes to the back of the
    /// line if it has work left.
    pub fn pop(&mut self) -> Option<(i64, T)> {
        let tenant_id = self.line.pop_front()?;
        let queue = self.queues.get_mut(&tenant_id)?;
        let item = queue.pop_front()?;
        self.len -= 1;
        if queue.is_empty() {
            self.queues.remove(&tenant_id);
        } else {
            self.line.push_back(tenant_id);
        }
        Some((tenant_id, item))
    }

    /// The last item `tenant_id` has waiting, to add to it.
    pub fn last_mut(&mut self, tenant_id: i64) -> Option<&mut T> {
        self.queues.get_mut(&tenant_id)?.back_mut()
    }

    /// The items `tenant_id` has waiting, in order.
    pub fn waiting(&self, tenant_id: i64) -> impl Iterator<Item = &T> {
        self.queues.get(&tenant_id).into_iter().flatten()
    }

    /// Puts an item taken with `pop` and only partly done back at the front of its
    /// tenant's queue; the tenant waits for its next turn at the back of the line.
    pub fn put_back(&mut self, tenant_id: i64, item: T) {
        let queue = self.queues.entry(tenant_id).or_default();
        if queue.is_empty() {
            self.line.push_back(tenant_id);
        }
        queue.push_front(item);
        self.len += 1;
    }

    /// Gives the queue of the tenant whose turn it is to `take`, which takes what it does
    /// from its front; `None` when there is no work.
    pub fn turn<R>(&mut self, take: impl FnOnce(&mut VecDeque<T>) -> R) -> Option<R> {
        let tenant_id = self.line.pop_front()?;
        let queue = self.queues.get_mut(&tenant_id)?;
        let before = queue.len();
        let taken = take(queue);
        self.len -= before - queue.len();
        if queue.is_empty() {
            self.queues.remove(&tenant_id);
        } else {
            self.line.push_back(tenant_id);
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_take_turns_and_keep_their_own_order() {
        let mut turns = Turns::default();
        for item in ["a1", "a2", "a3"] {
            turns.push(1, item);
        }
        turns.push(2, "b1");
        turns.push(3, "c1");
        turns.push(2, "b2");
        let mut order = Vec::new();
        while let Some(item) = turns.turn(VecDeque::pop_front) {
            order.extend(item);
        }
        assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        assert!(turns.is_empty());
        // A turn may take nothing: the tenant keeps its work and goes to the back.
        turns.push(1, "a");
        turns.push(2, "b");
        assert_eq!(turns.turn(|_| ()), Some(()));
        assert_eq!(turns.turn(VecDeque::pop_front), Some(Some("b")));
        assert_eq!(turns.len(), 1);
        turns.remove(1);
        assert!(turns.is_empty());
        assert_eq!(turns.turn(VecDeque::pop_front), None);
    }

    #[test]
    fn an_item_put_back_is_its_tenant_s_next_after_the_others_turns() {
        let mut turns = Turns::default();
        turns.push(1, "a1");
        turns.push(1, "a2");
        turns.push(2, "b1");
        let (tenant, item) = turns.pop().unwrap();
        assert_eq!((tenant, item), (1, "a1"));
        turns.put_back(tenant, "a1 rest");
        let mut order = Vec::new();
        while let Some((_, item)) = turns.pop() {
            order.push(item);
        }
        assert_eq!(order, ["b1", "a1 rest", "a2"]);
        // A tenant whose only item was taken comes back into the line.
        turns.push(3, "c1");
        let (tenant, _) = turns.pop().unwrap();
        assert!(turns.is_empty());
        turns.put_back(tenant, "c1 rest");
        assert_eq!(turns.len(), 1);
        assert_eq!(turns.pop(), Some((3, "c1 rest")));
        // The last item waiting can be added to.
        turns.push(1, "a1");
        turns.push(1, "a2");
        *turns.last_mut(1).unwrap() = "a2+a3";
        assert_eq!(turns.last_mut(2), None);
        assert_eq!(turns.waiting(1).collect::<Vec<_>>(), [&"a1", &"a2+a3"]);
    }
}
